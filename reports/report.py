"""report: accuracy per student with intervals, the hypothesis verdicts (relative to what the plan
predicts), H3.6 with costs side by side, the evaluation views (tool use among them). Writes data/reports/RUN/report.md,
report.html (one self-contained page, plots embedded), summary.json and the plots as PNG files.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from reports.analysis import REFERENCE, seed_summary, student_rows
from reports.deploy import deployment_summary
from reports.html import write_html
from reports.plots import write_plots
from reports.render import render
from reports.tools import tool_use
from reports.training_sets import training_set_rows
from reports.verdicts import hypothesis_rows
from reports.views import (
    answer_outcomes,
    answer_vs_reasoning,
    breakdowns,
    cot_vs_direct,
    methods_by_arm,
    pass_at_k_table,
    trained_sources,
)
from schemas import atomic
from schemas.config import ReportConfig
from students.choose import splits


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
    arm_stats: list[dict] = field(default_factory=list)  # the arms stage's arm_stats rows
    not_built: dict[str, str] = field(default_factory=dict)  # arm -> why this run has no such arm
    methods: list[str] = field(default_factory=list)  # train.methods (default: those in the evals)
    deploy: list[dict] = field(default_factory=list)  # deploy/RUN/measurements.json rows
    deploy_evals: pl.DataFrame | None = None  # deploy/RUN/evals.parquet (student NAME@FORMAT)
    deploy_margin: float = 0.05  # deploy.margin


def skipped(inputs: ReportInputs) -> dict[str, str]:
    return {s: m.get("reason", "") for s, m in inputs.metas.items() if m.get("status") == "skipped"}


def methods(inputs: ReportInputs) -> list[str]:
    """The training methods every hypothesis is tested under."""
    if inputs.methods:
        return inputs.methods
    found = inputs.evals.filter(~pl.col("arm").is_in(["base", REFERENCE]))["method"].unique().to_list()
    return sorted(set(found) | {m["method"] for m in inputs.metas.values() if "method" in m})


def analyse(inputs: ReportInputs, cfg: ReportConfig) -> dict:
    """Everything the report shows, as plain data (summary.json)."""
    students = student_rows(inputs.evals, inputs.metas, inputs.teacher_tokens, inputs.teacher_usd, cfg)
    c = cfg.confidence
    views = dict(cot_vs_direct=cot_vs_direct(inputs.evals, c), methods=methods_by_arm(inputs.evals, c),
                 pass_at_k=pass_at_k_table(inputs.evals, c), answer_vs_reasoning=answer_vs_reasoning(inputs.evals, c),
                 answer_outcomes=answer_outcomes(inputs.evals),
                 breakdowns=breakdowns(inputs.evals, inputs.problems, c), trained_sources=trained_sources(inputs.problems),
                 tool_use=tool_use(inputs.evals, c))
    why = inputs.not_built | skipped(inputs)
    kinds = {s: m.get("student_kind", "causal_lm") for s, m in inputs.metas.items()}
    rows = hypothesis_rows(inputs.evals, methods(inputs), why, cfg, kinds)
    return dict(
        run=inputs.run, counts=inputs.counts, training_sets=training_set_rows(inputs.arm_stats, inputs.metas),
        costs=inputs.costs, students=students, seeds=seed_summary(students),
        skipped=skipped(inputs), hypotheses=rows, family=sum(r["tested"] for r in rows), splits=split_note(inputs.evals),
        confidence=cfg.confidence, alpha=cfg.alpha, power=cfg.power,
        leaderboard=[e.model_dump() for e in cfg.leaderboard],
        deployment=deployment_summary(inputs.deploy, inputs.deploy_evals, inputs.deploy_margin, cfg.confidence)
        if inputs.deploy else None,
        **views,
    )


def split_note(evals: pl.DataFrame) -> dict:
    report, select = splits(evals)
    return dict(report=report, select=select)


def write_report(out_dir: Path, inputs: ReportInputs, cfg: ReportConfig) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = analyse(inputs, cfg)
    atomic.write_text(out_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    plots = write_plots(out_dir, summary)
    atomic.write_text(out_dir / "report.md", render(summary, plots))
    write_html(out_dir / "report.html", summary, plots)
    return out_dir / "report.md"
