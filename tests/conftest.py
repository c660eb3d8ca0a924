"""Shared fixtures: a tiny random Llama with the embedded tokenizer, temp data dirs, configs."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def make_tiny_llama(target: Path) -> Path:
    """A 2-layer random Llama (~3M parameters) that shares the embedded model's tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from students.model import load_tokenizer

    tok = load_tokenizer("embedded")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(target)
    tok.save_pretrained(target)
    return target


# ChatML (the embedded tokenizer's) over typed content: an image part becomes the processor's <image>.
VLM_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def make_tiny_vlm(target: Path) -> Path:
    """A random LLaVA (SigLIP vision tower of 1 layer on 32x32 pictures, 2-layer Llama) with the embedded
    tokenizer extended by the image token; saved with its processor, as a hub VLM is."""
    from transformers import (
        AutoTokenizer,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        SiglipVisionConfig,
    )
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from students.model import resolve

    tok = AutoTokenizer.from_pretrained(resolve("embedded"))
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_size, patch = 32, 8
    processor = LlavaProcessor(image_processor=SiglipImageProcessorPil(size={"height": image_size, "width": image_size}),
                               tokenizer=tok, patch_size=patch, vision_feature_select_strategy="full",
                               chat_template=VLM_TEMPLATE, image_token="<image>")
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=image_size, patch_size=patch)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                       tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="full", vision_feature_layer=-1)
    LlavaForConditionalGeneration(config).save_pretrained(target)
    processor.save_pretrained(target)
    return target


def assert_starts_from(trainer, sft: dict) -> None:
    """The trainer's model holds exactly the SFT adapter's tensors (`sft`: its safetensors), trainable."""
    import torch

    params = dict(trainer.model.named_parameters())
    start = {k.replace(".default", ""): v.detach() for k, v in params.items() if ".default." in k}  # trl adds `ref`
    assert {k.removeprefix("base_model.model.") for k in sft} == {k.removeprefix("base_model.model.") for k in start}
    assert all(torch.equal(sft[k], start[k]) for k in sft)
    assert all(p.requires_grad for k, p in params.items() if ".default." in k)  # continued, not frozen


def make_tiny_vit(target: Path) -> Path:
    """A 1-layer random ViT on 32x32 pictures (16 patches + CLS) with its image processor: a compose
    student's encoder."""
    import torch
    from transformers import ViTConfig, ViTModel
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    torch.manual_seed(0)
    ViTModel(ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       image_size=32, patch_size=8)).save_pretrained(target)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(target)
    return target


def raw_arm_data(root: Path, n_problems: int):
    """A data dir of synthetic problems (each with its picture) and the `raw` arm built from them
    (the dataset's own solutions: no teacher needed)."""
    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from schemas.tables import read_table, write_table
    from tasks.arms import build_arm
    from tasks.ingest import ingest

    data = DataDir(root)
    ingest(FactoryConfig.model_validate({"ingest": {"source": "synthetic", "n_problems": n_problems}}).ingest, data)
    problems = read_table(data.table("problems"), "problems")
    write_table(build_arm("raw", problems, {}, {}, {}), data.arm("raw") / "train.parquet", "arms")
    return data


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> str:
    return str(make_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm")))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    return str(make_tiny_llama(tmp_path_factory.mktemp("tiny-llama")))


@pytest.fixture(scope="session")
def sharp_model(tiny_model):
    """The tiny Llama with large random weights: its next token depends on the context and on positions
    (at the default initialisation it mostly echoes the last token), so a wrong cache or mask shows."""
    import torch
    from transformers import AutoConfig, LlamaForCausalLM

    config = AutoConfig.from_pretrained(tiny_model)
    config.initializer_range = 0.5
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(autouse=True, scope="session")
def _quiet_env():
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
