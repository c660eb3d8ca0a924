"""train: real trl + peft on a tiny Llama; adapters move, base weights stay put."""

import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from schemas.config import TrainConfig
from students.train import build_trainer, read_meta, train_student

ROWS = pl.DataFrame([
    {"prompt": [{"role": "user", "content": f"What is {i} plus one?"}],
     "completion": [{"role": "assistant", "content": f"{i} + 1 = {i + 1}. The answer is {i + 1}."}]}
    for i in range(10)
])


def cfg(model, **kw) -> TrainConfig:
    return TrainConfig(model=model, batch_size=4, epochs=2, **kw)


@pytest.mark.parametrize("method", ["lora", "prompt_tuning"])
def test_adapter_weights_change_and_base_weights_do_not(tiny_model, tmp_path, method):
    trainer = build_trainer(cfg(tiny_model), method, ROWS.to_dicts(), tmp_path / "ckpt")
    params = dict(trainer.model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert trainable and len(trainable) < len(params)
    before = {n: p.detach().clone() for n, p in params.items()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    changed = {n for n in params if not torch.equal(before[n], after[n].detach())}
    assert changed and changed <= trainable  # something trained, and only adapter weights
    assert all(not torch.equal(before[n], after[n].detach()) for n in trainable if "lora_A" not in n)


def test_completion_only_loss_masks_the_prompt(tiny_model, tmp_path):
    trainer = build_trainer(cfg(tiny_model), "lora", ROWS.to_dicts(), tmp_path / "ckpt")
    row = trainer.train_dataset[0]  # trl marks the loss either by labels (-100 = ignored) or a mask
    mask = [int(x != -100) for x in row["labels"]] if "labels" in row else row["completion_mask"]
    prompt_len = len(trainer.processing_class.apply_chat_template(ROWS["prompt"][0].to_list(), add_generation_prompt=True,
                                                                  return_dict=True)["input_ids"])
    assert 10 < prompt_len < len(row["input_ids"])
    assert sum(mask[:prompt_len]) == 0 and sum(mask[prompt_len:]) > 0


def test_train_student_writes_adapter_and_reuses_it(tiny_model, tmp_path):
    meta = train_student(cfg(tiny_model), "lora", "raw", ROWS, tmp_path / "s")
    assert meta["status"] == "trained" and meta["train_examples"] == 10 and meta["train_tokens"] > 0
    weights = load_file(tmp_path / "s" / "adapter_model.safetensors")
    assert weights and all("lora" in k for k in weights)  # the adapter only, never base weights
    assert not (tmp_path / "s" / "checkpoints").exists()
    assert train_student(cfg(tiny_model), "lora", "raw", ROWS, tmp_path / "s")["reused"] is True
    retrained = train_student(cfg(tiny_model), "lora", "raw", ROWS.head(6), tmp_path / "s")
    assert "reused" not in retrained and read_meta(tmp_path / "s")["train_examples"] == 6


def test_empty_arm_is_skipped_with_a_reason(tiny_model, tmp_path):
    meta = train_student(cfg(tiny_model), "prompt_tuning", "teacher_cot", ROWS.clear(), tmp_path / "e")
    assert meta["status"] == "skipped" and meta["reason"] == "no training examples"


def test_a_killed_training_resumes_from_its_checkpoint(tiny_model, tmp_path):
    """The process dies after the first checkpoint; the next call resumes instead of restarting."""
    import subprocess
    import sys
    import textwrap

    rows = tmp_path / "rows.parquet"
    pl.concat([ROWS] * 4).write_parquet(rows)  # 40 rows, batch 4, 3 epochs: 30 steps; checkpoint at 25
    script = textwrap.dedent(f"""
        import os, polars as pl, transformers
        from schemas.config import TrainConfig
        from students.train import train_student
        step = transformers.Trainer.training_step
        calls = []
        def dying_step(self, *a, **k):
            calls.append(1)
            if len(calls) == 27:
                os._exit(9)  # a crash two steps after the checkpoint at step 25
            return step(self, *a, **k)
        transformers.Trainer.training_step = dying_step
        train_student(TrainConfig(model={tiny_model!r}, batch_size=4, epochs=3), "lora", "raw",
                      pl.read_parquet({str(rows)!r}), {str(tmp_path / 's')!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert (tmp_path / "s" / "checkpoints" / "checkpoint-25").exists() and read_meta(tmp_path / "s") is None
    meta = train_student(TrainConfig(model=tiny_model, batch_size=4, epochs=3), "lora", "raw",
                         pl.read_parquet(rows), tmp_path / "s")
    assert meta["resumed"] is True and meta["steps"] == 30 and meta["status"] == "trained"


def long_rows(n: int, words: int) -> pl.DataFrame:
    return pl.DataFrame([{"prompt": [{"role": "user", "content": f"Question {i}: " + "why " * words}],
                          "completion": [{"role": "assistant", "content": "The answer is 1."}]} for i in range(n)])


def test_examples_longer_than_max_length_are_left_out_and_counted(tiny_model, tmp_path):
    rows = pl.concat([ROWS.head(4), long_rows(3, 200)])  # 3 examples of ~240 tokens, 4 short ones
    meta = train_student(cfg(tiny_model, max_length=128), "lora", "raw", rows, tmp_path / "s")
    assert meta["status"] == "trained" and meta["train_examples"] == 4 and meta["too_long"] == 3


def test_an_arm_whose_examples_are_all_too_long_is_skipped_with_the_reason_in_the_report(tiny_model, tmp_path):
    """trl would drop every example and crash (num_samples=0); the arm is skipped and the report says why."""
    from reports.report import write_report
    from schemas.config import ReportConfig

    meta = train_student(cfg(tiny_model, max_length=128), "lora", "mistakes", long_rows(5, 200), tmp_path / "s")
    assert meta["status"] == "skipped" and meta["too_long"] == 5
    assert meta["reason"] == "all 5 examples are longer than train.max_length (128 tokens)"
    assert not (tmp_path / "s" / "adapter_model.safetensors").exists()
    from reports.report import ReportInputs
    from schemas.tables import empty

    report = write_report(tmp_path / "r", ReportInputs(run="r", evals=empty("evals"), problems=empty("problems"),
                                                       metas={"mistakes-lora": meta}), ReportConfig()).read_text()
    assert "| mistakes-lora |  |  |  | not trained: all 5 examples are longer than train.max_length (128 tokens) |" in report


def test_max_length_must_hold_a_prompt():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="greater than or equal to 128"):
        TrainConfig(max_length=96)
