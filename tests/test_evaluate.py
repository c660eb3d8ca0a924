"""evaluate: greedy answers from a real (tiny) student, graded; LoRA and soft-prompt adapters load."""

import polars as pl
import pytest

from schemas.config import TrainConfig
from schemas.tables import SCHEMAS
from students.evaluate import answer, evaluate_student, load_student
from students.model import load_tokenizer
from students.train import train_student

PROBLEMS = pl.DataFrame([dict(problem_id=f"p{i}", split="test", question=f"What is {i} plus 1?", choices=[],
                              answer=str(i + 1), answer_index=None, answer_type="numeric", hint="", lecture="",
                              solution="", caption=None, image_sha=None) for i in range(4)])
ROWS = pl.DataFrame([{"prompt": [{"role": "user", "content": "Say hi"}], "completion": [{"role": "assistant", "content": "hi"}]}] * 4)


def test_greedy_generation_is_deterministic(tiny_model):
    model, tok = load_student(tiny_model, None), load_tokenizer(tiny_model)
    a = answer(model, tok, ["Hello", "What is 2+2?"], 6, 2)
    assert a == answer(model, tok, ["Hello", "What is 2+2?"], 6, 1)  # batching does not change answers
    assert all(0 < g.new_tokens <= 6 for g in a)


@pytest.mark.parametrize("method", ["lora", "prompt_tuning"])
def test_evaluate_trained_student(tiny_model, tmp_path, method):
    cfg = TrainConfig(model=tiny_model, batch_size=2)
    train_student(cfg, method, "raw", ROWS, tmp_path / method)
    model = load_student(tiny_model, str(tmp_path / method))
    info = dict(run="r", student=f"raw-{method}", arm="raw", method=method, eval_fingerprint="f")
    df = evaluate_student(model, load_tokenizer(tiny_model), PROBLEMS, {}, "plain", info, 8, 4)
    assert df.schema == pl.Schema(SCHEMAS["evals"]) and df.height == 4
    assert df["correct"].dtype == pl.Boolean and df["correct"].null_count() == 0
