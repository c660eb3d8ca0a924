"""report: accuracy per student with intervals, the hypothesis verdicts (relative to what the plan
predicts), H3.6 with costs side by side, the evaluation views. Writes data/reports/RUN/report.md,
report.html (one self-contained page, plots embedded), summary.json and the plots as PNG files.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from reports.analysis import hypothesis_rows, seed_summary, student_rows
from reports.html import write_html
from reports.plots import write_plots
from reports.render import render
from reports.views import (
    answer_outcomes,
    answer_vs_reasoning,
    breakdowns,
    cot_vs_direct,
    methods_by_arm,
    pass_at_k_table,
)
from schemas import atomic
from schemas.config import ReportConfig


@dataclass
class ReportInputs:
    run: str
    evals: pl.DataFrame
    problems: pl.DataFrame
    metas: dict[str, dict] = field(default_factory=dict)  # trained student -> train_meta.json
    teacher_tokens: dict[str, int] = field(default_factory=dict)  # arm -> tokens its teacher data took
    teacher_usd: dict[str, float | None] = field(default_factory=dict)
    counts: dict = field(default_factory=dict)  # pipeline counts, in order
    costs: list[dict] = field(default_factory=list)  # per stage and model


def analyse(inputs: ReportInputs, cfg: ReportConfig) -> dict:
    """Everything the report shows, as plain data (summary.json), on the test split only (val is for
    choosing)."""
    evals = inputs.evals.filter(pl.col("split") == "test")
    students = student_rows(evals, inputs.metas, inputs.teacher_tokens, inputs.teacher_usd, cfg)
    views = dict(cot_vs_direct=cot_vs_direct(evals), methods=methods_by_arm(evals), pass_at_k=pass_at_k_table(evals),
                 answer_vs_reasoning=answer_vs_reasoning(evals), answer_outcomes=answer_outcomes(evals))
    return dict(
        run=inputs.run, counts=inputs.counts, costs=inputs.costs, students=students, seeds=seed_summary(students),
        skipped={s: m.get("reason", "") for s, m in inputs.metas.items() if m.get("status") == "skipped"},
        hypotheses=hypothesis_rows(evals, cfg), confidence=cfg.confidence, alpha=cfg.alpha,
        power=cfg.power, leaderboard=[e.model_dump() for e in cfg.leaderboard],
        **{k: v.to_dicts() for k, v in views.items()},
        breakdowns={k: v.to_dicts() for k, v in breakdowns(evals, inputs.problems).items()},
    )


def write_report(out_dir: Path, inputs: ReportInputs, cfg: ReportConfig) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = analyse(inputs, cfg)
    atomic.write_text(out_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    plots = write_plots(out_dir, summary)
    atomic.write_text(out_dir / "report.md", render(summary, plots))
    write_html(out_dir / "report.html", summary, plots)
    return out_dir / "report.md"
