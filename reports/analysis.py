"""The report's numbers, from the evals table (one row per student or reference, problem, split,
prompt style, decoding and sample index): accuracy with Wilson intervals on the test split, val
accuracy beside it (where choices are made), seeds side by side. The hypothesis verdicts are in
`reports/verdicts.py`. Plain functions of polars frames; `reports/report.py` writes them out.
"""

import polars as pl

from reports.stats import wilson
from schemas.config import ReportConfig
from students.choose import greedy, splits

REFERENCE = "reference"  # the `arm` of a reference model's rows


def primary(evals: pl.DataFrame) -> pl.DataFrame:
    """The answers accuracy is reported on: greedy, chain-of-thought prompt (else the first style), on
    the reported split (test when it was evaluated)."""
    return greedy(evals).filter(pl.col("split") == splits(evals)[0])


def accuracy(df: pl.DataFrame, cfg: ReportConfig) -> dict:
    """Accuracy over the judgeable answers (a null `correct` is a gold that cannot be judged), Wilson interval."""
    correct = df["correct"].drop_nulls()
    k, n = int(correct.sum()), correct.len()
    lo, hi = wilson(k, n, cfg.confidence)
    return dict(accuracy=k / n if n else float("nan"), ci_low=lo, ci_high=hi, n=n)


def val_accuracy(evals: pl.DataFrame) -> dict[str, float]:
    """Greedy accuracy per student on the split choices are made on (empty without one)."""
    select = splits(evals)[1]
    if select is None:
        return {}
    answers = greedy(evals).filter((pl.col("split") == select) & pl.col("correct").is_not_null())
    return dict(answers.group_by("student").agg(pl.col("correct").cast(pl.Float64).mean()).iter_rows())


def student_rows(evals: pl.DataFrame, metas: dict[str, dict], teacher_tokens: dict[str, int],
                 teacher_usd: dict[str, float | None], cfg: ReportConfig) -> list[dict]:
    """Per student or reference: test accuracy and interval, val accuracy, training and inference
    costs (None where a cost is unknown or does not apply: shown as n/a, never 0)."""
    rows, val = [], val_accuracy(evals)
    for (student,), g in primary(evals).group_by("student", maintain_order=True):
        meta, arm = metas.get(student, {}), g["arm"][0]
        trained = arm not in ("base", REFERENCE) and meta.get("status") != "skipped"
        row = dict(student=student, arm=arm, method=g["method"][0], seed=g["seed"][0], **accuracy(g, cfg),
                   val_accuracy=val.get(student), answer_tokens=float(g["generated_tokens"].mean()),
                   **answer_costs(g, arm, cfg.device_hour_usd), train_examples=meta.get("train_examples"),
                   train_wall_s=meta.get("wall_s") if trained else None, train_tokens=meta.get("train_tokens"),
                   too_long=meta.get("too_long", 0), device=meta.get("device"),
                   teacher_tokens=teacher_tokens.get(arm), teacher_usd=teacher_usd.get(arm) if trained else None)
        rows.append(row | efficiency(row, trained, cfg.device_hour_usd))
    return rows


def answer_costs(g: pl.DataFrame, arm: str, device_hour_usd: float | None) -> dict:
    """Seconds per answer (a reference's per request; a local student's batch time shared out, i.e.
    device-seconds) and dollars per answer (API prices; a local student's device time at
    report.device_hour_usd; None when unpriced)."""
    cost, latency = g["cost_usd"], g["latency_s"].drop_nulls()
    seconds = float(latency.mean()) if latency.len() else None
    if arm == REFERENCE:
        usd = float(cost.mean()) if cost.null_count() == 0 and float(cost.sum()) > 0 else None
    else:
        usd = seconds * device_hour_usd / 3600 if seconds is not None and device_hour_usd is not None else None
    return dict(answer_s=seconds, latency_kind="per request" if arm == REFERENCE else "device-seconds, batch-amortised",
                answer_usd=usd)


def efficiency(row: dict, trained: bool, device_hour_usd: float | None) -> dict:
    """H3.6's efficiency: the dollars behind the test answers (teacher data and training for a trained
    student, at report.device_hour_usd for its device time; the answers for everyone) and accuracy
    points per dollar; None where any part is unknown."""
    train_usd = None if not trained or row["train_wall_s"] is None or device_hour_usd is None \
        else row["train_wall_s"] * device_hour_usd / 3600
    answers = None if row["answer_usd"] is None else row["answer_usd"] * row["n"]
    parts = [answers, *([row["teacher_usd"], train_usd] if trained else [])]
    total = None if any(p is None for p in parts) else sum(parts)
    per_usd = 100 * row["accuracy"] / total if total and row["accuracy"] == row["accuracy"] else None
    return dict(train_usd=train_usd, total_usd=total, points_per_usd=per_usd)


def seed_summary(students: list[dict]) -> list[dict]:
    """Mean and sd of accuracy across seeds per (arm, method); only arms trained with several seeds."""
    df = pl.DataFrame([s for s in students if s["seed"] is not None], infer_schema_length=None)
    if df.is_empty():
        return []
    out = (df.group_by("arm", "method").agg(pl.len().alias("seeds"), pl.col("accuracy").mean().alias("mean"),
                                            pl.col("accuracy").std().alias("sd"))
           .filter(pl.col("seeds") > 1).sort("arm", "method"))
    return out.to_dicts()
