"""`vlm` students: image-text-to-text models (Qwen2-VL / Qwen2.5-VL, SmolVLM / Idefics3, PaliGemma,
LLaVA) that are shown the problem's image instead of (or besides, `train.captions`) its caption.

The arms hold the image's sha, so the same arm trains a text or a vision student: the rows are
rebuilt here with the picture from the data directory. Training is trl's SFTTrainer, or its
GRPOTrainer (students/grpo.py: the same rows' prompts, each with its picture), with the model's
processor (trl lays the image placeholder before the user text); LoRA goes on the language
model's linear layers and the vision tower and projector stay frozen unless `train.lora.targets`
says otherwise. Generation is one `generate` per batch through the processor: evaluation, and a
vlm student teaching a later round (students/teachers.py StudentTeacher).
"""

import re
from functools import lru_cache
from pathlib import Path

import polars as pl

from schemas.config import TrainConfig
from schemas.paths import DataDir
from students.generate import Generated, whole
from tasks.prompts import user_message

# Module names of the parts that see pixels (vision tower, projector / connector) across architectures.
VISION = re.compile(r"vision|visual|multi_modal_projector|mm_projector|connector|merger|image_newline|patch_embed")


def language_layers(model) -> list[str]:
    """Every linear layer of the language model, by full module name (the output head excluded)."""
    import torch

    return [name for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not VISION.search(name) and not name.endswith("lm_head")]


@lru_cache(maxsize=2)
def load_processor(name: str):
    from transformers import AutoProcessor

    from students.model import resolve

    processor = AutoProcessor.from_pretrained(resolve(name))
    tok = processor.tokenizer
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"  # decoder-only generation pads on the left
    return processor


def load_vlm(name: str):
    import torch
    from transformers import AutoModelForImageTextToText

    from students.model import keep_freed_memory, resolve

    keep_freed_memory()
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32  # bf16 on a GPU; CPUs train in fp32
    model = AutoModelForImageTextToText.from_pretrained(resolve(name), dtype=dtype)
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval()


def image_of(data: DataDir, sha: str | None):
    """The problem's picture (RGB), or None when it has none."""
    return picture(data.image(sha)) if sha else None


def picture(path: Path):
    """The picture stored at `path` (a data directory's images/...), in RGB."""
    from PIL import Image

    if not path.exists():
        raise FileNotFoundError(f"{path}: the image of a problem is missing from the data directory (run ingest)")
    with Image.open(path) as im:
        return im.convert("RGB")


def chat(prompt: str, has_image: bool) -> list[dict]:
    """One user turn in the processors' typed-content form, the image first."""
    content = ([{"type": "image"}] if has_image else []) + [{"type": "text", "text": prompt}]
    return [{"role": "user", "content": content}]


def training_rows(cfg: TrainConfig, arm_df: pl.DataFrame, problems: pl.DataFrame, captions: dict[str, str],
                  data: DataDir) -> list[dict]:
    """trl's vision prompt/completion rows for an arm: the arm's prompt rebuilt with the caption only when
    `train.captions`, and the image (a list of zero or one)."""
    by_id = {p["problem_id"]: p for p in problems.iter_rows(named=True)}
    rows = []
    for r in arm_df.iter_rows(named=True):
        p = by_id[r["problem_id"]]
        caption = captions.get(p["problem_id"]) if cfg.captions else None
        image = image_of(data, r["image_sha"])
        rows.append(dict(prompt=[{"role": "user", "content": user_message(p, caption, r["variant"])}],
                         completion=r["completion"], images=[image] if image is not None else []))
    return rows


def example_length(processor, row: dict) -> int:
    """Tokens of one training row as the model sees it (image tokens included); a GRPO row has no completion."""
    messages = chat(row["prompt"][0]["content"], bool(row["images"])) + [
        {"role": "assistant", "content": [{"type": "text", "text": m["content"]}]} for m in row["completion"]]
    text = processor.apply_chat_template(messages)
    enc = processor(text=[text], images=[row["images"]] if row["images"] else None, return_tensors="pt")
    return int(enc["input_ids"].shape[1])


def vlm_generate(model, processor, prompts: list[str], images: list, max_new_tokens: int, *,
                 temperature: float = 0.0, top_p: float = 1.0, num_return_sequences: int = 1,
                 stop_at_answer: bool = False) -> list[Generated]:
    """`num_return_sequences` answers per (prompt, image or None), prompt-major. Rows with and
    without a picture go in separate calls (processors want an image for every placeholder)."""
    out: list[Generated | None] = [None] * (len(prompts) * num_return_sequences)
    for with_image in (True, False):
        idx = [i for i, im in enumerate(images) if (im is not None) == with_image]
        if not idx:
            continue
        got = _generate(model, processor, [prompts[i] for i in idx], [images[i] for i in idx] if with_image else None,
                        max_new_tokens, temperature, top_p, num_return_sequences, stop_at_answer)
        for j, i in enumerate(idx):
            out[i * num_return_sequences:(i + 1) * num_return_sequences] = \
                got[j * num_return_sequences:(j + 1) * num_return_sequences]
    return out


def _generate(model, processor, prompts, images, max_new_tokens, temperature, top_p, n, stop_at_answer):
    texts = [processor.apply_chat_template(chat(p, images is not None), add_generation_prompt=True) for p in prompts]
    enc = processor(text=texts, images=[[im] for im in images] if images else None, padding=True,
                    padding_side="left", return_tensors="pt").to(model.device)
    return whole(model, processor.tokenizer, enc, max_new_tokens, temperature, top_p, n, stop_at_answer)
