"""grpo: trl's GRPOTrainer on real models (the embedded SmolLM2, a tiny random Llama) with the
factory's verifier as reward; SFT -> GRPO starts from the SFT adapter."""

import math

import polars as pl
import pytest
from conftest import assert_starts_from, raw_arm_data
from safetensors.torch import load_file

from schemas.config import FactoryConfig, TrainConfig, VerifyConfig
from schemas.paths import DataDir
from schemas.tables import read_table
from students.grpo import correctness_reward, format_reward, grpo_rows
from students.stages import run_evaluate, run_train
from students.train import build_trainer
from tasks.prompts import user_message
from tasks.verify import verify_shard


@pytest.fixture(scope="module")
def grpo_data(tmp_path_factory) -> DataDir:
    """Synthetic problems and the `raw` arm built from them (no teacher needed)."""
    return raw_arm_data(tmp_path_factory.mktemp("grpo_data"), 12)


def problems_of(data: DataDir) -> list[dict]:
    return read_table(data.table("problems"), "problems").filter(pl.col("split") == "train").to_dicts()


def test_grpo_correctness_reward_is_verifys_verdict_and_can_be_one():
    p = dict(problem_id="p", question="2+2?", choices=["3", "4"], answer="4", answer_index=1,
             answer_type="multiple_choice")
    rows = grpo_rows([[]] * 3, [p] * 3, VerifyConfig())
    texts = ["so it is 4. The answer is (B).", "The answer is (A).", "no idea"]
    got = correctness_reward([[{"role": "assistant", "content": t}] for t in texts],
                             **{k: [r[k] for r in rows] for k in ("problem", "verify")})
    assert got == [1.0, 0.0, 0.0]
    assert format_reward(texts) == [1.0, 1.0, 0.0]


def test_grpo_rewards_on_sampled_completions_equal_verify_and_loss_is_finite(grpo_data, tmp_path):
    """A few GRPO steps of the embedded model: every reward trl received is verify's verdict on the
    completion it sampled (the recorder only watches the real reward function)."""
    problems = problems_of(grpo_data)[:3]
    rows = grpo_rows([[{"role": "user", "content": user_message(p, None, "plain")}] for p in problems], problems,
                     VerifyConfig())
    cfg = TrainConfig(model="embedded", methods=["grpo"], max_length=512,
                      grpo={"num_generations": 2, "max_completion_length": 48, "max_steps": 3})
    trainer = build_trainer(cfg, "grpo", rows, tmp_path / "ckpt")
    seen = []

    def recorded(completions, **kw):
        rewards = correctness_reward(completions, **kw)
        seen.extend(zip(completions, [__import__("json").loads(p) for p in kw["problem"]], rewards, strict=True))
        return rewards

    recorded.__name__ = "correctness_reward"
    trainer.reward_funcs[0] = recorded
    result = trainer.train()
    assert result.global_step == 3 and math.isfinite(result.training_loss)
    assert all(math.isfinite(h["loss"]) for h in trainer.state.log_history if "loss" in h)
    assert len(seen) == 3 * 2  # every step's group
    samples = pl.DataFrame([dict(sample_id=str(i), problem_id=p["problem_id"], teacher="t", variant="plain",
                                 reasoning=None, content=c[0]["content"]) for i, (c, p, _) in enumerate(seen)])
    verdicts = verify_shard(VerifyConfig(), samples, pl.DataFrame(problems, infer_schema_length=None))
    expected = [None if c is None else float(c) for c in verdicts["correct"]]
    assert [r for _, _, r in seen] == expected


def grpo_config(model: str, data: DataDir, **train) -> FactoryConfig:
    return FactoryConfig.model_validate({
        "data_dir": str(data.root), "run": "rl", "arms": {"arms": ["raw"]},
        "train": {"model": model, "epochs": 1, "batch_size": 2, "max_length": 384,
                  "grpo": {"num_generations": 2, "max_completion_length": 16, "max_steps": 2}, **train},
        "evaluate": {"max_new_tokens": 8, "batch_size": 4, "baseline": False}})


def test_grpo_student_is_saved_and_evaluated_and_sft_then_grpo_starts_from_the_sft_adapter(tiny_model, grpo_data):
    cfg = grpo_config(tiny_model, grpo_data, methods=["lora", "grpo", "lora+grpo"])
    assert run_train(cfg, grpo_data, "raw", "lora")["status"] == "trained"
    sft = load_file(grpo_data.student("rl", "raw-lora") / "adapter_model.safetensors")
    # the SFT -> GRPO trainer starts with exactly the SFT adapter's weights
    rows = [dict(r) for r in grpo_rows([[{"role": "user", "content": "Q"}]], [dict(problem_id="p", answer="1",
                                                                               answer_type="numeric")], cfg.verify)]
    trainer = build_trainer(cfg.train, "lora+grpo", rows, grpo_data.root / "ckpt",
                            init_dir=grpo_data.student("rl", "raw-lora"))
    assert_starts_from(trainer, sft)
    del trainer
    for method in ("grpo", "lora+grpo"):
        meta = run_train(cfg, grpo_data, "raw", method)
        assert meta["status"] == "trained" and math.isfinite(meta["train_loss"]) and meta["steps"] == 2
        assert meta["init"] == ("raw-lora" if method == "lora+grpo" else "base") and meta["train_tokens"] > 0
        tuned = load_file(grpo_data.student("rl", f"raw-{method}") / "adapter_model.safetensors")
        assert tuned and all("lora" in k for k in tuned)
        result = run_evaluate(cfg, grpo_data, f"raw-{method}")
        assert result["status"] == "evaluated" and result["n"] > 0
    assert run_train(cfg, grpo_data, "raw", "lora+grpo")["reused"] is True


def test_grpo_from_a_named_student_needs_it_trained_first(tiny_model, grpo_data):
    from schemas.errors import InputError

    cfg = grpo_config(tiny_model, grpo_data, methods=["lora", "grpo"], init="raw-lora")
    with pytest.raises(InputError, match="raw-lora, which was not trained"):
        run_train(cfg.model_copy(update={"run": "other"}), grpo_data, "raw", "grpo")
    from students.train import write_meta

    write_meta(grpo_data.student("skipped", "raw-lora"), dict(status="skipped", reason="no training examples",
                                                               fingerprint="skipped:none"))
    meta = run_train(cfg.model_copy(update={"run": "skipped"}), grpo_data, "raw", "grpo")
    assert meta["status"] == "skipped" and meta["reason"] == "starts from raw-lora, not trained: no training examples"
    with pytest.raises(ValueError, match="add lora"):
        TrainConfig(methods=["lora+grpo"])
    with pytest.raises(ValueError, match="neither `base` nor a lora student"):
        grpo_config(tiny_model, grpo_data, methods=["prompt_tuning", "grpo"], init="raw-prompt_tuning")
