"""compose students: a tiny random ViT (no hub) + a 2-layer projector + a causal LM, trained in two
stages (projector, then projector + LoRA), saved and loaded as one directory, and evaluated with the
picture through the same train / evaluate stages as a vlm student. The embedded SmolLM2-135M is
composed, trained one step of each stage and shown two pictures (about 18 s); the stage tests train
the session's tiny Llama (same tokenizer), which is seconds."""

import polars as pl
import pytest
import torch
from conftest import make_tiny_vit, raw_arm_data
from PIL import Image

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import read_table
from students.compose import (
    PROJECTOR,
    SPEC,
    assemble,
    example,
    load_encoder,
    new_spec,
    save_compose,
    stage_one,
    stage_two,
)
from students.loading import load_student
from students.rows import training_rows
from students.stages import run_evaluate, run_train


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> str:
    return str(make_tiny_vit(tmp_path_factory.mktemp("tiny-vit")))


@pytest.fixture(scope="module")
def image_data(tmp_path_factory) -> DataDir:
    return raw_arm_data(tmp_path_factory.mktemp("compose_data"), 8)


def compose_config(vit: str, data: DataDir, lm: str, **compose) -> FactoryConfig:
    return FactoryConfig.model_validate({
        "data_dir": str(data.root), "run": "compose", "arms": {"arms": ["raw"]},
        "train": {"model": lm, "student": "compose", "epochs": 0.8, "batch_size": 2, "max_length": 512,
                  "lora": {"learning_rate": 1e-3},
                  "compose": {"encoder": vit, "projector": "mlp2", "stage1_max_steps": 2, **compose}},
        "evaluate": {"max_new_tokens": 4, "batch_size": 4, "baseline": False, "prompts": ["cot"]}})


def colour(rgb) -> Image.Image:
    return Image.new("RGB", (40, 40), rgb)


def copy(named) -> dict:
    return {n: p.detach().clone() for n, p in named}


def same(before: dict, named) -> bool:
    now = dict(named)
    return now.keys() == before.keys() and all(torch.equal(before[n], now[n].detach()) for n in before)


def base_weights(lm) -> dict:
    """The LM's own weights by their names before peft wrapped it."""
    named = lm.get_base_model().named_parameters() if hasattr(lm, "get_base_model") else lm.named_parameters()
    return {n.replace(".base_layer", ""): p for n, p in named if "lora_" not in n}


@pytest.fixture(scope="module")
def trained(tiny_vit, image_data, tiny_model):
    """The two stages run on one model, with the weights seen before, between and after them."""
    cfg = compose_config(tiny_vit, image_data, tiny_model)
    rows = training_rows(cfg, image_data, read_table(image_data.arm("raw") / "train.parquet", "arms"), "lora")
    model = assemble(new_spec(tiny_model, cfg.train.compose))
    examples = [example(model.processor, r) for r in rows]
    seen = dict(lm=copy(model.lm.named_parameters()), encoder=copy(model.encoder.named_parameters()),
                projector=copy(model.projector.named_parameters()))
    seen["stage1"] = stage_one(model, examples, cfg.train)
    seen["lm_after1"] = same(seen["lm"], model.lm.named_parameters())
    seen["encoder_after1"] = same(seen["encoder"], model.encoder.named_parameters())
    seen["projector_after1"] = copy(model.projector.named_parameters())
    seen["stage2"] = stage_two(model, examples, cfg.train)
    return model, examples, seen


def test_compose_stage1_trains_the_projector_alone(trained):
    model, examples, seen = trained
    assert seen["stage1"]["stage1_steps"] == 2 and torch.isfinite(torch.tensor(seen["stage1"]["stage1_loss"]))
    assert seen["lm_after1"] and seen["encoder_after1"]  # bit for bit
    assert not same(seen["projector"], seen["projector_after1"].items())
    assert all(e["pixel_values"] is not None for e in examples)  # every synthetic problem has a picture
    first = examples[0]
    masked = int((first["labels"] == -100).sum())  # the loss is on the completion only
    assert 17 < masked < len(first["labels"])  # 17 image tokens (16 patches + CLS) are in the prompt


def test_compose_stage2_trains_lora_and_projector_not_the_base_lm(trained):
    model, _, seen = trained
    lora = {n: p for n, p in model.lm.named_parameters() if "lora_B" in n}
    assert lora and any(p.abs().sum() > 0 for p in lora.values())  # lora_B starts at zero
    assert same(seen["lm"], base_weights(model.lm).items())
    assert same(seen["encoder"], model.encoder.named_parameters())
    assert not same(seen["projector_after1"], model.projector.named_parameters())


def logits_for(model, images: list) -> torch.Tensor:
    proc = model.processor
    text = proc.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                                                                     "text": "Colour?"}]}],
                                    add_generation_prompt=True)
    with torch.no_grad():
        return torch.stack([model(**proc(text=[text], images=[[im]])).logits[0, -1] for im in images])


def test_compose_saved_and_loaded_as_one_directory_gives_the_same_logits(trained, tmp_path):
    model, _, _ = trained
    save_compose(model, tmp_path)
    assert {SPEC, PROJECTOR, "adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    loaded = load_student("unused", str(tmp_path), "compose")  # the directory names its parts
    pictures = [colour((255, 0, 0)), colour((0, 0, 255))]
    assert torch.allclose(logits_for(model, pictures), logits_for(loaded, pictures), atol=1e-4)


def test_compose_two_pictures_with_the_same_text_give_different_logits(trained):
    model, _, _ = trained
    black, white = logits_for(model, [colour((0, 0, 0)), colour((255, 255, 255))])
    assert not torch.allclose(black, white)


def test_compose_of_the_embedded_lm_sees_the_picture(tiny_vit):
    """The untrained composition with SmolLM2-135M (the `base` student): its tokenizer gains the
    placeholder, its vocabulary does not, and the picture changes its answer's logits."""
    from schemas.config import ComposeConfig

    model = load_student("embedded", None, "compose", ComposeConfig(encoder=tiny_vit, projector="linear"))
    tok = model.processor.tokenizer
    assert model.processor.image_token_id == model.lm.get_input_embeddings().num_embeddings == len(tok) - 1
    black, white = logits_for(model, [colour((0, 0, 0)), colour((255, 255, 255))])
    assert not torch.allclose(black, white)


def test_compose_of_the_embedded_lm_trains_projector_then_lora(tiny_vit, image_data):
    """The issue's student: a tiny random ViT and the embedded SmolLM2-135M, one step of each stage on two
    examples. Stage 1 leaves the LM bit for bit as loaded; stage 2 moves LoRA and the projector, not the LM."""
    cfg = compose_config(tiny_vit, image_data, "embedded", projector="linear", stage1_max_steps=1)
    train = cfg.train.model_copy(update={"epochs": 1.0, "batch_size": 2})
    rows = training_rows(cfg, image_data, read_table(image_data.arm("raw") / "train.parquet", "arms"), "lora")[:2]
    model = assemble(new_spec("embedded", train.compose))
    examples = [example(model.processor, r) for r in rows]
    lm, projector = copy(model.lm.named_parameters()), copy(model.projector.named_parameters())
    first = stage_one(model, examples, train)
    assert first["stage1_steps"] == 1 and torch.isfinite(torch.tensor(first["stage1_loss"]))
    assert same(lm, model.lm.named_parameters()) and not same(projector, model.projector.named_parameters())
    after_one = copy(model.projector.named_parameters())
    assert stage_two(model, examples, train)["stage2_steps"] == 1
    assert any(p.abs().sum() > 0 for n, p in model.lm.named_parameters() if "lora_B" in n)
    assert same(lm, base_weights(model.lm).items()) and not same(after_one, model.projector.named_parameters())
    black, white = logits_for(model, [colour((0, 0, 0)), colour((255, 255, 255))])
    assert not torch.allclose(black, white)


def test_compose_rejects_methods_it_does_not_train(tiny_vit, image_data):
    with pytest.raises(ValueError, match="compose student trains with lora only"):
        FactoryConfig.model_validate({"train": {"student": "compose", "methods": ["lora", "lora+grpo"]}})


def test_compose_student_trains_and_is_evaluated_with_pictures_through_the_stages(tiny_vit, image_data, tiny_model):
    cfg = compose_config(tiny_vit, image_data, tiny_model, image_tokens=4)  # pooled: 17 patch embeddings -> 4
    cfg = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"k": 2})})  # and 2 samples each
    meta = run_train(cfg, image_data, "raw", "lora")
    assert meta["status"] == "trained" and meta["student_kind"] == "compose" and meta["train_tokens"] > 0
    assert meta["steps"] == meta["stage1_steps"] + meta["stage2_steps"] == 2 + 2
    seen = []  # pixel batches the encoder received while answering
    hook = load_encoder(tiny_vit)[0].register_forward_hook(lambda m, args, kw=None: seen.append(m))
    try:
        result = run_evaluate(cfg, image_data, "raw-lora")
    finally:
        hook.remove()
    evals = read_table(image_data.evals("compose") / "raw-lora.parquet", "evals")
    test = read_table(image_data.table("problems"), "problems").filter(pl.col("split").is_in(["val", "test"]))
    counts = {k: g.height for (k,), g in evals.group_by("decoding")}
    assert result["status"] == "evaluated" and counts == {"greedy": test.height, "sampled": 2 * test.height} and seen
    assert evals["generated_tokens"].min() > 0 and evals["prompt_tokens"].min() > 4
    assert run_evaluate(cfg, image_data, "raw-lora")["status"] == "reused"
    assert run_train(cfg, image_data, "raw", "lora")["reused"] is True


def test_compose_base_student_is_the_untrained_composition_and_its_parts_name_its_answers(tiny_vit, image_data,
                                                                                           tiny_model):
    cfg = compose_config(tiny_vit, image_data, tiny_model)
    assert run_evaluate(cfg, image_data, "base")["status"] == "evaluated"
    assert run_evaluate(cfg, image_data, "base")["status"] == "reused"
    other = compose_config(tiny_vit, image_data, tiny_model, projector="linear")  # another untrained composition
    assert run_evaluate(other, image_data, "base")["status"] == "evaluated"


def test_compose_student_teacher_answers_each_request_shown_its_picture(tiny_vit, image_data, tiny_model):
    """A trained compose student as `sample.teacher: student` (a later round's teacher): its encoder receives
    exactly the pixels of the pictures the requests name, once for the k paths of a request."""
    from students.backends import teacher_for
    from students.rounds import round_config
    from tasks.sample import build_requests

    cfg = compose_config(tiny_vit, image_data, tiny_model)
    assert run_train(cfg, image_data, "raw", "lora")["status"] == "trained"
    teacher_cfg = round_config(cfg.model_copy(update={"rounds": 2}), 2, image_data.student("compose", "raw-lora"))
    assert teacher_cfg.sample.images and not teacher_cfg.sample.captions  # it trained on the picture alone
    problems = read_table(image_data.table("problems"), "problems").filter(pl.col("split") == "train").head(2)
    asked = teacher_cfg.sample.model_copy(update={"k": 2, "variants": ["plain"], "max_new_tokens": 8})
    items, _ = build_requests(asked, problems, {}, image_data.image, uncaptioned=True)
    teacher = teacher_for(teacher_cfg.sample)
    assert teacher.identity.startswith("student/compose/raw-lora@")
    seen = []
    hook = teacher._load()[1].encoder.register_forward_hook(lambda m, a, kw, out: seen.append(kw["pixel_values"]),
                                                            with_kwargs=True)
    try:
        got = teacher.complete([r for _, _, r in items])
    finally:
        hook.remove()
    assert len(got) == 4 and all(c.completion_tokens > 0 for c in got)
    pictures = [Image.open(image_data.image(sha)).convert("RGB") for sha in problems["image_sha"]]
    expected = load_encoder(tiny_vit)[1](pictures, return_tensors="pt")["pixel_values"]
    assert len(seen) == 1 and torch.equal(seen[0], expected)
