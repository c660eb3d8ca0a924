"""vlm GRPO: trl's GRPOTrainer on the tiny random LLaVA with each problem's picture in its prompt, the
factory's grader as reward; SFT -> GRPO starts from the vlm's SFT adapter; the students are evaluated
with the picture and compared per arm like text students."""

import json
import math

import polars as pl
import pytest
import torch
from conftest import assert_starts_from, raw_arm_data
from safetensors.torch import load_file

from schemas.config import FactoryConfig, VerifyConfig
from schemas.paths import DataDir
from schemas.tables import read_table
from students.grpo import correctness_reward
from students.rows import training_rows
from students.stages import run_evaluate, run_train
from students.train import build_trainer
from students.vlm import image_of, load_processor
from tasks.verify import verify_shard

STEPS, GROUP = 3, 2  # optimiser steps; completions per prompt (one prompt per step)


@pytest.fixture(scope="module")
def vlm_grpo_data(tmp_path_factory) -> DataDir:
    return raw_arm_data(tmp_path_factory.mktemp("vlm_grpo_data"), 8)


def vlm_grpo_config(tiny_vlm: str, data: DataDir, methods: list[str], steps: int = STEPS) -> FactoryConfig:
    return FactoryConfig.model_validate({
        "data_dir": str(data.root), "run": "vlmrl", "arms": {"arms": ["raw"]},
        "train": {"model": tiny_vlm, "student": "vlm", "methods": methods, "epochs": 1, "batch_size": 2,
                  "max_length": 256, "grpo": {"num_generations": GROUP, "max_completion_length": 12,
                                              "max_steps": steps}},
        "evaluate": {"max_new_tokens": 4, "batch_size": 8, "baseline": False}})


def grpo_rows_of(cfg: FactoryConfig, data: DataDir) -> list[dict]:
    return training_rows(cfg, data, read_table(data.arm("raw") / "train.parquet", "arms"), "grpo")


def test_vlm_grpo_rows_carry_each_problems_picture_and_no_caption(tiny_vlm, vlm_grpo_data):
    rows = grpo_rows_of(vlm_grpo_config(tiny_vlm, vlm_grpo_data, ["grpo"]), vlm_grpo_data)
    problems = {p["problem_id"]: p for p in read_table(vlm_grpo_data.table("problems"), "problems").to_dicts()}
    assert rows and all(len(r["images"]) == 1 for r in rows)
    for r in rows:
        sha = problems[json.loads(r["problem"])["problem_id"]]["image_sha"]
        assert list(r["images"][0].getdata()) == list(image_of(vlm_grpo_data, sha).getdata())
        assert "Image:" not in r["prompt"][0]["content"]  # the picture, not its caption


def gold_answer(p: dict) -> str:
    return f"The answer is ({chr(65 + p['answer_index'])})." if p["choices"] else f"The answer is {p['answer']}."


def watch(trainer, data: DataDir, processor):
    """Records the pixel batches the vision tower receives inside `generate`, and every reward trl computed
    with the real correctness reward (completion, problem, reward). The first completion of each group is
    replaced by its problem's gold answer (the problem found by its picture and question in the prompt), so
    the rewards hold 1s where grading follows the right problem and 0s elsewhere."""
    vision = next(m for n, m in trainer.model.named_modules() if n.endswith("vision_tower"))
    pixels, rewards, generating = [], [], []
    vision.register_forward_hook(lambda m, args, out: pixels.append(args[0].clone()) if generating else None)
    generate, tok = trainer.model.generate, processor.tokenizer
    problems = read_table(data.table("problems"), "problems").to_dicts()
    picture = {p["problem_id"]: processor.image_processor([image_of(data, p["image_sha"])],
                                                          return_tensors="pt")["pixel_values"][0] for p in problems}

    def forced(out, kw):
        prompt = tok.decode(kw["input_ids"][0])
        (p,) = [q for q in problems if q["question"] in prompt and torch.equal(picture[q["problem_id"]],
                                                                              kw["pixel_values"][0])]
        ids = tok(gold_answer(p), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n = kw["input_ids"].shape[1]
        full = torch.full((out.shape[0], max(out.shape[1], n + len(ids))), tok.pad_token_id, dtype=out.dtype)
        full[:, :out.shape[1]] = out
        full[0, n:] = tok.pad_token_id
        full[0, n:n + len(ids)] = torch.tensor(ids)
        return full

    def watched_generate(*a, **kw):
        generating.append(True)
        try:
            return forced(generate(*a, **kw), kw)
        finally:
            generating.clear()

    trainer.model.generate = watched_generate

    def recorded(completions, **kw):
        got = correctness_reward(completions, **kw)
        rewards.extend(zip(completions, [json.loads(p) for p in kw["problem"]], got, strict=True))
        return got

    recorded.__name__ = "correctness_reward"
    trainer.reward_funcs[0] = recorded
    return pixels, rewards


def test_vlm_grpo_sees_the_pictures_when_generating_and_its_rewards_are_the_graders(tiny_vlm, vlm_grpo_data,
                                                                                      tmp_path):
    cfg = vlm_grpo_config(tiny_vlm, vlm_grpo_data, ["grpo"])
    rows = grpo_rows_of(cfg, vlm_grpo_data)
    trainer = build_trainer(cfg.train, "grpo", rows, tmp_path / "ckpt")
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and not any("vision_tower" in n or "projector" in n for n in trainable)  # vision frozen
    processor = load_processor(tiny_vlm)
    pixels, seen = watch(trainer, vlm_grpo_data, processor)
    result = trainer.train()
    assert result.global_step == STEPS and math.isfinite(result.training_loss)
    assert all(math.isfinite(h["loss"]) for h in trainer.state.log_history if "loss" in h)
    assert len(seen) == STEPS * GROUP and len(pixels) == STEPS  # one prefill per step's group
    assert [r for _, _, r in seen[::GROUP]] == [1.0] * STEPS  # each group's gold answer, graded against its problem
    assert 0.0 in [r for _, _, r in seen]  # and the random model's own completions are wrong
    for step, got in enumerate(pixels):  # step i's group: one problem's picture, GROUP times
        (p,) = {json.dumps(q, sort_keys=True): q for _, q, _ in seen[step * GROUP:(step + 1) * GROUP]}.values()
        picture = image_of(vlm_grpo_data, p["image_sha"])
        expected = processor.image_processor([picture] * GROUP, return_tensors="pt")["pixel_values"]
        assert torch.equal(got, expected)
    problems = read_table(vlm_grpo_data.table("problems"), "problems")
    samples = pl.DataFrame([dict(sample_id=str(i), problem_id=p["problem_id"], teacher="t", variant="plain",
                                 reasoning=None, content=c[0]["content"]) for i, (c, p, _) in enumerate(seen)])
    verdicts = verify_shard(VerifyConfig(), samples, problems)
    assert [r for _, _, r in seen] == [None if c is None else float(c) for c in verdicts["correct"]]


def test_vlm_sft_then_grpo_starts_from_the_sft_adapter_and_every_method_is_evaluated_with_the_picture(
        tiny_vlm, vlm_grpo_data):
    from reports.views import methods_by_arm

    cfg = vlm_grpo_config(tiny_vlm, vlm_grpo_data, ["lora", "grpo", "lora+grpo"], steps=2)
    assert run_train(cfg, vlm_grpo_data, "raw", "lora")["status"] == "trained"
    sft_dir = vlm_grpo_data.student("vlmrl", "raw-lora")
    sft = load_file(sft_dir / "adapter_model.safetensors")
    trainer = build_trainer(cfg.train, "lora+grpo", grpo_rows_of(cfg, vlm_grpo_data)[:1], vlm_grpo_data.root / "c",
                            init_dir=sft_dir)
    assert_starts_from(trainer, sft)
    del trainer
    evals = []
    for method in ("lora", "grpo", "lora+grpo"):
        meta = run_train(cfg, vlm_grpo_data, "raw", method)
        assert meta["status"] == "trained" and meta["student_kind"] == "vlm" and math.isfinite(meta["train_loss"])
        assert meta["steps"] == (2 if "grpo" in method else 3)  # grpo: max_steps; lora: 5 examples, batch 2
        assert meta["init"] == ("raw-lora" if method == "lora+grpo" else "base")
        assert not any("vision" in k for k in load_file(vlm_grpo_data.student("vlmrl", f"raw-{method}")
                                                       / "adapter_model.safetensors"))
        assert run_evaluate(cfg, vlm_grpo_data, f"raw-{method}")["status"] == "evaluated"
        evals.append(read_table(vlm_grpo_data.evals("vlmrl") / f"raw-{method}.parquet", "evals"))
    assert pl.concat(evals)["prompt_tokens"].min() > 16  # 16 image patches before the question
    (row,) = methods_by_arm(pl.concat(evals), 0.95)
    assert row["arm"] == "raw" and all(row[m]["n"] > 0 for m in ("lora", "grpo", "lora+grpo"))
