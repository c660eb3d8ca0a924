"""report: per-student accuracy with bootstrap intervals, the hypothesis table, costs.

Writes data/reports/<run>/report.md and summary.json.
"""

import json
import math
from pathlib import Path

import polars as pl

from reports.stats import bootstrap_ci, paired_bootstrap_diff
from schemas.config import ReportConfig

# (hypothesis, treatment arm, control arm, what a positive difference means)
HYPOTHESES = [
    ("H3.1", "teacher_answer", "raw", "teacher's answer and solution beat the dataset's solution"),
    ("H3.2", "raw_plus_teacher", "teacher_answer", "adding the dataset's solution to the teacher's helps"),
    ("H3.3", "teacher_cot", "teacher_answer", "the full chain of thought beats the outputs alone"),
    ("H3.4", "teacher_lecture", "teacher_answer", "the retrieved lecture in context helps"),
    ("H3.5", "mistakes", "raw_plus_teacher", "seeing corrected teacher mistakes (+ lecture) helps"),
    ("CoT", "raw", "answer_only", "training on solutions beats training on answers only"),
]


def student_rows(evals: pl.DataFrame, metas: dict[str, dict], teacher_tokens: dict[str, int],
                 cfg: ReportConfig, teacher_usd: dict[str, float | None] | None = None) -> list[dict]:
    rows = []
    for (student,), g in evals.group_by("student", maintain_order=True):
        correct = g["correct"].drop_nulls().cast(pl.Float64).to_numpy()  # null: gold not judgeable
        lo, hi = bootstrap_ci(correct, cfg.n_bootstrap, cfg.confidence, cfg.seed)
        meta = metas.get(student, {})
        arm = g["arm"][0]
        rows.append(dict(student=student, arm=arm, method=g["method"][0], accuracy=float(correct.mean()),
                         ci_low=lo, ci_high=hi, n=int(correct.size), answer_tokens=float(g["generated_tokens"].mean()),
                         train_examples=meta.get("train_examples", 0), train_wall_s=meta.get("wall_s", 0.0),
                         train_tokens=meta.get("train_tokens", 0), too_long=meta.get("too_long", 0),
                         teacher_tokens=teacher_tokens.get(arm, 0),
                         teacher_usd=(teacher_usd or {}).get(arm)))
    return rows


def hypothesis_rows(evals: pl.DataFrame, cfg: ReportConfig) -> list[dict]:
    """Paired comparisons of two arms trained with the same method, on the same test problems."""
    rows = []
    evals = evals.filter(pl.col("correct").is_not_null())
    for method in evals.filter(pl.col("method") != "none")["method"].unique(maintain_order=True):
        by_arm = {arm: g.select("problem_id", "correct") for (arm,), g in
                  evals.filter(pl.col("method") == method).group_by("arm")}
        for name, treat, control, meaning in HYPOTHESES:
            if treat not in by_arm or control not in by_arm:
                continue
            pairs = by_arm[treat].join(by_arm[control], on="problem_id", suffix="_control")  # same problems only
            a, b = (pairs[c].cast(pl.Float64).to_numpy() for c in ("correct", "correct_control"))
            diff, lo, hi = paired_bootstrap_diff(a, b, cfg.n_bootstrap, cfg.confidence, cfg.seed)
            verdict = "supported" if lo > 0 else "refuted" if hi < 0 else "inconclusive"
            rows.append(dict(hypothesis=name, method=method, treatment=treat, control=control, meaning=meaning,
                             difference=diff, ci_low=lo, ci_high=hi, verdict=verdict))
    return rows


def by_topic(evals: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """Accuracy per student (rows) and topic (columns) on the evaluated problems."""
    joined = evals.join(problems.select("problem_id", "topic"), on="problem_id", how="left")
    return (joined.group_by("student", "topic").agg(pl.col("correct").mean())
            .pivot(on="topic", index="student", values="correct", sort_columns=True).sort("student"))


def pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def usd(x: float | None) -> str:
    return "unpriced" if x is None else f"${x:.4f}"


def render(run: str, students: list[dict], hypotheses: list[dict], counts: dict, confidence: float,
           skipped: dict[str, str], topics: pl.DataFrame, costs: list[dict] = ()) -> str:
    c = int(round(confidence * 100))
    lines = [f"# distillery report: run `{run}`", "", "## Pipeline", ""]
    lines += [f"- {k}: {v}" for k, v in counts.items()]
    if costs:
        lines += ["", "## Costs", "", "What the data of this run cost to produce (cached answers were paid once).", "",
                  "| stage | model | answers | tokens in | tokens out | cost |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['stage']} | {r['model']} | {r['answers']} | {r['tokens_in']} | {r['tokens_out']} | "
                  f"{usd(r['cost_usd'])} |" for r in costs]
    lines += ["", "## Students", "", f"| student | arm | method | accuracy | {c}% CI | n | train examples "
              "| train time (s) | train tokens | teacher tokens | teacher cost | tokens per answer |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(students, key=lambda r: (-r["accuracy"], r["student"])):
        lines.append(f"| {r['student']} | {r['arm']} | {r['method']} | {pct(r['accuracy'])} | "
                     f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}] | {r['n']} | {r['train_examples']} | "
                     f"{r['train_wall_s']:.1f} | {r['train_tokens']} | {r['teacher_tokens']} | "
                     f"{usd(r.get('teacher_usd'))} | {r['answer_tokens']:.0f} |")
    lines += [f"| {name} | | | not trained: {why} | | 0 | 0 | | | | | |" for name, why in skipped.items()]
    if long := [f"{r['student']} {r['too_long']}" for r in students if r.get("too_long")]:
        lines += ["", "Training examples left out for being longer than train.max_length: " + ", ".join(long) + "."]
    if topics.height:
        names = topics.columns[1:]
        lines += ["", "## Accuracy by topic", "", f"| student | {' | '.join(names)} |", "|---" * (len(names) + 1) + "|"]
        lines += [f"| {r[0]} | {' | '.join(pct(x) for x in r[1:])} |" for r in topics.iter_rows()]
    lines += ["", "## Hypotheses", "", f"Paired bootstrap over the same test problems; {c}% interval of "
              "the accuracy difference (treatment - control).", "",
              "| hypothesis | method | treatment | control | difference | interval | verdict |",
              "|---|---|---|---|---|---|---|"]
    for h in hypotheses:
        lines.append(f"| {h['hypothesis']} | {h['method']} | {h['treatment']} | {h['control']} | "
                     f"{pct(h['difference'])} | [{pct(h['ci_low'])}, {pct(h['ci_high'])}] | {h['verdict']} |")
    if not hypotheses:
        lines.append("| (no pair of trained arms to compare) | | | | | | |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, run: str, evals: pl.DataFrame, problems: pl.DataFrame, metas: dict[str, dict],
                 teacher_tokens: dict[str, int], counts: dict, cfg: ReportConfig, costs: list[dict] = (),
                 teacher_usd: dict[str, float | None] | None = None) -> Path:
    students = student_rows(evals, metas, teacher_tokens, cfg, teacher_usd)
    hypotheses = hypothesis_rows(evals, cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped = {s: m.get("reason", "") for s, m in metas.items() if m.get("status") == "skipped"}
    topics = by_topic(evals, problems)
    summary = dict(run=run, counts=counts, costs=list(costs), students=students, skipped=skipped,
                   hypotheses=hypotheses, by_topic=topics.to_dicts())
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out_dir / "report.md").write_text(render(run, students, hypotheses, counts, cfg.confidence, skipped, topics,
                                                   costs))
    return out_dir / "report.md"
