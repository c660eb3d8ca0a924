"""Bootstrap intervals against a direct reference, and the report files."""

import json

import numpy as np
import polars as pl
import pytest

from reports.report import write_report
from reports.stats import bootstrap_ci, paired_bootstrap_diff
from schemas.config import ReportConfig


def reference_ci(x, n_boot, confidence, seed):
    """The textbook percentile bootstrap, one resample at a time."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    means = sorted(float(np.mean([x[i] for i in row])) for row in idx)
    a = (1 - confidence) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def test_bootstrap_matches_reference_and_covers_the_mean():
    x = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 1], dtype=float)
    lo, hi = bootstrap_ci(x, 500, 0.9, seed=3)
    assert (lo, hi) == pytest.approx(reference_ci(x, 500, 0.9, 3))
    assert lo < x.mean() < hi
    assert bootstrap_ci(np.ones(20)) == (1.0, 1.0)


def test_paired_difference_sign():
    a, b = np.ones(30), np.r_[np.zeros(20), np.ones(10)]
    diff, lo, hi = paired_bootstrap_diff(a, b)
    assert diff == pytest.approx(20 / 30) and 0 < lo <= diff <= hi


def evals(student, arm, method, correct):
    n = len(correct)
    return pl.DataFrame(dict(run=["r"] * n, student=[student] * n, arm=[arm] * n, method=[method] * n,
                             problem_id=[f"p{i}" for i in range(n)], split=["test"] * n, response=["x"] * n,
                             extracted=["A"] * n, correct=correct, grader=["choice_index"] * n,
                             generated_tokens=[3] * n, eval_fingerprint=["f"] * n))


def test_report_files(tmp_path):
    ev = pl.concat([evals("raw-lora", "raw", "lora", [True] * 5 + [False] * 35),
                    evals("teacher_answer-lora", "teacher_answer", "lora", [True] * 38 + [False] * 2),
                    evals("base", "base", "none", [False] * 40)])
    metas = {"raw-lora": {"train_examples": 7, "wall_s": 1.5, "train_tokens": 100}}
    problems = pl.DataFrame({"problem_id": [f"p{i}" for i in range(40)], "topic": ["maps"] * 10 + ["verbs"] * 30})
    path = write_report(tmp_path, "r", ev, problems, metas, {"teacher_answer": 1234}, {"problems": "test 40"}, ReportConfig())
    text = path.read_text()
    assert "| raw-lora | raw | lora | 12.5% |" in text and "| H3.1 | lora | teacher_answer | raw |" in text
    assert "| student | maps | verbs |" in text and "| raw-lora | 50.0% | 0.0% |" in text  # 5 right, all in maps
    summary = json.loads((tmp_path / "summary.json").read_text())
    h = summary["hypotheses"][0]
    assert h["hypothesis"] == "H3.1" and h["verdict"] == "supported" and h["difference"] == pytest.approx(33 / 40)
    assert {s["student"]: s["teacher_tokens"] for s in summary["students"]}["teacher_answer-lora"] == 1234


def test_unjudgeable_answers_leave_accuracy_and_pairing_alone(tmp_path):
    treat = evals("teacher_answer-lora", "teacher_answer", "lora", [True, True, None, False])
    control = evals("raw-lora", "raw", "lora", [False, True, False, False])
    problems = pl.DataFrame({"problem_id": [f"p{i}" for i in range(4)], "topic": ["t"] * 4})
    write_report(tmp_path, "r", pl.concat([treat, control]), problems, {}, {}, {}, ReportConfig())
    summary = json.loads((tmp_path / "summary.json").read_text())
    row = {s["student"]: s for s in summary["students"]}["teacher_answer-lora"]
    assert (row["n"], row["accuracy"]) == (3, pytest.approx(2 / 3))
    assert summary["hypotheses"][0]["difference"] == pytest.approx(1 / 3)  # p0, p1, p3 paired: (2 - 1) / 3


def test_costs_per_stage_and_arm_from_the_tables(tmp_path):
    from reports.stages import stage_costs, teacher_usd_per_arm
    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from schemas.tables import SCHEMAS, write_table

    cfg = FactoryConfig.model_validate({"sample": {"teacher": "openai", "model": "gpt-4o-mini"}})
    rows = [dict(sample_id=f"s{i}", problem_id="p", teacher="openai/gpt-4o-mini", model="gpt-4o-mini",
                 variant=v, sample_index=i, request_key="k", prompt="", reasoning=None, content="", finish_reason="stop",
                 prompt_tokens=1000, completion_tokens=500, latency_s=0.1, cost_usd=0.0015)
            for i, v in enumerate(["plain", "plain", "lecture"])]
    samples = pl.DataFrame(rows, schema=SCHEMAS["samples"])
    data = DataDir(tmp_path)
    write_table(pl.DataFrame([dict(problem_id="p", image_sha="x", captioner="gemini", caption="c", prompt_tokens=300,
                                   completion_tokens=40, cost_usd=None)], schema=SCHEMAS["captions"]),
                data.table("captions") / "gemini" / "s.parquet", "captions")
    costs = stage_costs(data, samples)
    assert costs == [dict(stage="caption", model="gemini", answers=1, tokens_in=300, tokens_out=40, cost_usd=None),
                     dict(stage="sample", model="openai/gpt-4o-mini", answers=3, tokens_in=3000, tokens_out=1500,
                          cost_usd=0.0045)]
    per_arm = teacher_usd_per_arm(cfg, samples)
    assert per_arm["teacher_cot"] == pytest.approx(0.003) and per_arm["teacher_lecture"] == pytest.approx(0.0015)
    path = write_report(tmp_path / "r", "r", pl.DataFrame(schema=SCHEMAS["evals"]), pl.DataFrame(schema=SCHEMAS["problems"]),
                        {}, {}, {}, ReportConfig(), costs, per_arm)
    text = path.read_text()
    assert "| sample | openai/gpt-4o-mini | 3 | 3000 | 1500 | $0.0045 |" in text and "| caption | gemini | 1 | 300 | 40 | unpriced |" in text


def test_pipeline_counts_pass_at_k_per_teacher_and_copies(tmp_path):
    from reports.stages import pipeline_counts, teacher_usd_per_arm
    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from schemas.tables import SCHEMAS, empty, write_table

    data = DataDir(tmp_path)
    sel = [dict(problem_id=p, teacher=t, variant="plain", policy="shortest_correct", sample_id=None, reasoning=None,
                content=None, n_samples=4, n_correct=c, pass_at_1=c / 4, pass_at_k=float(c > 0))
           for p, t, c in [("p1", "a", 4), ("p2", "a", 0), ("p1", "b", 1)]]
    write_table(pl.DataFrame(sel, schema=SCHEMAS["selected"]), data.table("selected") / "x.parquet", "selected")
    write_table(pl.DataFrame([dict(problem_id="p1", match_id="q", match_split="test", score=100.0)],
                             schema=SCHEMAS["contamination"]), data.table("contamination") / "flags.parquet",
                "contamination")
    counts = pipeline_counts(FactoryConfig(), data, empty("problems"), empty("samples"))
    assert counts["teacher pass@1 / pass@k (a, plain, 2 problems)"] == "0.500 / 0.500"
    assert counts["teacher pass@1 / pass@k (b, plain, 1 problems)"] == "0.250 / 1.000"
    assert counts["training problems copying a val/test problem"] == "1 (left out of the arms)"
    cfg = FactoryConfig.model_validate({"arms": {"teacher": "b", "decontaminate": False}})
    assert pipeline_counts(cfg, data, empty("problems"), empty("samples"))[
        "training problems copying a val/test problem"].endswith("(kept: arms.decontaminate is off)")
    priced = pl.DataFrame([dict(sample_id="s", problem_id="p1", teacher="b", model="m", variant="plain", sample_index=0,
                                request_key="k", prompt=None, reasoning=None, content="", finish_reason="stop",
                                prompt_tokens=None, completion_tokens=None, latency_s=None, cost_usd=0.25)],
                          schema=SCHEMAS["samples"])
    assert teacher_usd_per_arm(cfg, priced)["teacher_cot"] == 0.25  # arms.teacher's samples, not sample's
