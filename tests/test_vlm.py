"""vlm students: a tiny random LLaVA (no hub) trained with LoRA on an image arm and evaluated with
the image, through the same train / evaluate stages as a text student."""

import polars as pl
import pytest
import torch
from conftest import raw_arm_data
from PIL import Image
from safetensors.torch import load_file

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import read_table
from students.evaluate import Solver, answer
from students.loading import load_student
from students.stages import run_evaluate, run_train
from students.train import build_trainer
from students.vlm import load_processor


@pytest.fixture(scope="module")
def image_data(tmp_path_factory) -> DataDir:
    """Synthetic problems (each with its own picture) and the `raw` arm built from them."""
    return raw_arm_data(tmp_path_factory.mktemp("image_data"), 16)


def vlm_config(tiny_vlm: str, data: DataDir, **train) -> FactoryConfig:
    return FactoryConfig.model_validate({
        "data_dir": str(data.root), "run": "vlm", "arms": {"arms": ["raw"]},
        "train": {"model": tiny_vlm, "student": "vlm", "epochs": 1, "batch_size": 2, "max_length": 256, **train},
        "evaluate": {"max_new_tokens": 8, "batch_size": 4, "baseline": False}})


def colour(rgb) -> Image.Image:
    return Image.new("RGB", (40, 40), rgb)


def test_vlm_two_pictures_with_the_same_text_give_different_logits(tiny_vlm):
    model, processor = load_student(tiny_vlm, None, "vlm"), load_processor(tiny_vlm)
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                                                                          "text": "Colour?"}]}],
                                         add_generation_prompt=True)
    logits = [model(**processor(text=[text], images=[[colour(c)]], return_tensors="pt")).logits[0, -1]
              for c in ((0, 0, 0), (255, 255, 255))]
    assert not torch.allclose(logits[0], logits[1])


def test_vlm_evaluation_feeds_each_problem_its_own_picture(tiny_vlm):
    model, processor = load_student(tiny_vlm, None, "vlm"), load_processor(tiny_vlm)
    seen = []  # pixel batches the vision tower received
    hook = model.model.vision_tower.register_forward_hook(lambda m, args, kw=None: seen.append(args[0].clone()))
    images = [colour((255, 0, 0)), None, colour((0, 0, 255))]
    try:
        got = answer(Solver(model, processor=processor, images=images), ["Q1", "Q2", "Q3"], 4, batch_size=3)
    finally:
        hook.remove()
    assert len(got) == 3 and all(g.new_tokens > 0 for g, _ in got)
    expected = processor.image_processor([images[0], images[2]], return_tensors="pt")["pixel_values"]
    assert len(seen) == 1 and torch.allclose(seen[0], expected)  # the two pictures, once, in problem order
    assert got[1][0].prompt_tokens < got[0][0].prompt_tokens  # the problem without a picture has no image tokens


def test_vlm_sft_changes_adapter_weights_and_not_base_weights(tiny_vlm, image_data):
    cfg = vlm_config(tiny_vlm, image_data)
    from students.rows import training_rows

    rows = training_rows(cfg, image_data, read_table(image_data.arm("raw") / "train.parquet", "arms"), "lora")
    assert rows and all(len(r["images"]) == 1 for r in rows)  # every synthetic problem has a picture
    assert all("Image:" not in r["prompt"][0]["content"] for r in rows)  # the picture, not its caption
    trainer = build_trainer(cfg.train, "lora", rows, image_data.root / "ckpt")
    params = dict(trainer.model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert trainable and not any("vision_tower" in n or "projector" in n for n in trainable)  # vision frozen
    before = {n: p.detach().clone() for n, p in params.items()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and changed <= trainable and any("lora_B" in n for n in changed)


@pytest.mark.parametrize("method", ["lora", "prompt_tuning"])
def test_vlm_student_trains_and_is_evaluated_with_images_through_the_stages(tiny_vlm, image_data, method):
    """Every evaluation view's answers (cot, direct, k sampled) come from the student shown the picture."""
    cfg = vlm_config(tiny_vlm, image_data, methods=[method])
    cfg = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"prompts": ["cot", "direct"], "k": 2})})
    meta = run_train(cfg, image_data, "raw", method)
    assert meta["status"] == "trained" and meta["student_kind"] == "vlm" and meta["train_tokens"] > 0
    weights = load_file(image_data.student("vlm", f"raw-{method}") / "adapter_model.safetensors")
    assert weights and not any("vision" in k for k in weights)
    result = run_evaluate(cfg, image_data, f"raw-{method}")
    evals = read_table(image_data.evals("vlm") / f"raw-{method}.parquet", "evals")
    test = read_table(image_data.table("problems"), "problems").filter(pl.col("split").is_in(["val", "test"]))
    counts = {k: g.height for k, g in evals.group_by("prompt_style", "decoding")}
    assert result["status"] == "evaluated" and counts == {("cot", "greedy"): test.height,
                                                          ("direct", "greedy"): test.height,
                                                          ("cot", "sampled"): 2 * test.height}
    assert evals["prompt_tokens"].min() > 16 + 8  # 16 image patches + the question
    assert run_evaluate(cfg, image_data, f"raw-{method}")["status"] == "reused"
    assert run_train(cfg, image_data, "raw", method)["reused"] is True
