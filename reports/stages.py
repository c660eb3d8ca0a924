"""report as a function of (config, data dir): gathers evals, training metadata and costs."""

from pathlib import Path

import polars as pl

from reports.report import ReportInputs, write_report
from reports.verdicts import declared
from schemas.config import FactoryConfig
from schemas.errors import InputError
from schemas.paths import DataDir
from schemas.tables import read_table
from students.backends import arms_teacher
from students.choose import run_evals
from students.deployment import read_measurements
from students.stages import BASE, students
from students.train import read_meta
from tasks.arms import arm_not_built, arm_unavailable
from tasks.export import teacher_spend
from tasks.select import pass_rates


def teacher_tokens_per_arm(cfg: FactoryConfig, samples: pl.DataFrame) -> dict[str, int]:
    """Tokens (in + out, all k paths) the arms' teacher spent on each arm's source variant."""
    return {arm: teacher_spend(samples, arms_teacher(cfg), arm)[0] for arm in cfg.arms.arms}


def teacher_usd_per_arm(cfg: FactoryConfig, samples: pl.DataFrame) -> dict[str, float | None]:
    """USD the arms' teacher's samples of each arm's source variant cost (None: unpriced)."""
    return {arm: teacher_spend(samples, arms_teacher(cfg), arm)[1] for arm in cfg.arms.arms}


def stage_costs(data: DataDir, samples: pl.DataFrame) -> list[dict]:
    """Per stage and model: requests, tokens and USD of what is in the tables now."""
    captions = read_table(data.table("captions"), "captions").filter(pl.col("captioner") != "dataset")
    rows = []
    for stage, df, model in (("caption", captions, "captioner"), ("sample", samples, "teacher")):
        for (name,), g in df.group_by(model, maintain_order=True):
            cost = g["cost_usd"]
            rows.append(dict(stage=stage, model=name, answers=g.height, tokens_in=int(g["prompt_tokens"].sum()),
                             tokens_out=int(g["completion_tokens"].sum()),
                             cost_usd=None if cost.null_count() else round(float(cost.sum()), 6)))
    return rows


def copies(cfg: FactoryConfig, flags: pl.DataFrame) -> str:
    """Flagged training problems by kind and source pair, and what the arms did with them."""
    text, image = (flags.filter(pl.col("kind") == k) for k in ("text", "image"))
    pairs = ", ".join(f"{a} vs {b}: {n}" for a, b, n in flags.group_by("source", "match_source").len()
                      .sort("source", "match_source").iter_rows())
    kept = "left out of the arms" if cfg.arms.decontaminate else "kept: arms.decontaminate is off"
    line = f"{text['problem_id'].n_unique()} ({kept})"
    if image.height:
        line += (f"; {image['problem_id'].n_unique()} show a val/test picture ("
                 + ("left out" if cfg.arms.image_overlap else "kept: arms.image_overlap is off") + ")")
    return line + (f"; by source: {pairs}" if pairs else "")


def pipeline_counts(cfg: FactoryConfig, data: DataDir, problems: pl.DataFrame, samples: pl.DataFrame) -> dict:
    rejects = read_table(data.table("rejects"), "rejects")
    flags = read_table(data.table("contamination"), "contamination")
    verdicts = read_table(data.table("verdicts"), "verdicts")
    selected = read_table(data.table("selected"), "selected")
    splits = problems.group_by("split").len().sort("split")
    counts = {
        "problems": ", ".join(f"{s} {n}" for s, n in splits.iter_rows()) or "0",
        "rejected rows": rejects.height,
        "training problems copying a val/test problem": copies(cfg, flags),
        "teacher samples": samples.height,
        "samples judged correct": f"{verdicts['correct'].sum()} of {verdicts.height}",
        "samples left out of selection as unfinished (truncated, or no answer committed to)":
            f"{selected.unique(['problem_id', 'teacher', 'variant'])['n_unfinished'].sum()} of {samples.height}",
        "teacher tokens (in + out)": int((samples["prompt_tokens"] + samples["completion_tokens"]).sum()),
    }
    for r in pass_rates(selected).iter_rows(named=True):
        counts[f"teacher pass@1 / pass@k ({r['teacher']}, {r['variant']}, {r['problems']} problems)"] = (
            f"{r['pass_at_1']:.3f} / {r['pass_at_k']:.3f}")
    return counts


def not_built(cfg: FactoryConfig, data: DataDir) -> dict[str, str]:
    """Why an arm the hypotheses name has no students in this run."""
    named = {a for h in declared(cfg.report) for a in (h.treatment, h.control)}
    why = {a: "not in arms.arms" for a in named if a not in cfg.arms.arms}
    return why | {a: r for a in cfg.arms.arms if (r := arm_unavailable(cfg, a) or arm_not_built(data, a))}


def run_report(cfg: FactoryConfig, data: DataDir) -> Path:
    evals = run_evals(cfg, data)  # only what this config evaluates
    if evals.is_empty():
        raise InputError(f"no evaluations of run {cfg.run!r} in {data.evals(cfg.run)}: run `distillery evaluate` first")
    metas = {s: read_meta(data.student(cfg.run, s)) or {} for s in students(cfg) if s != BASE}
    samples = read_table(data.table("samples"), "samples")
    problems = read_table(data.table("problems"), "problems")
    inputs = ReportInputs(run=cfg.run, evals=evals, problems=problems, metas=metas,
                          teacher_tokens=teacher_tokens_per_arm(cfg, samples),
                          teacher_usd=teacher_usd_per_arm(cfg, samples),
                          counts=pipeline_counts(cfg, data, problems, samples), costs=stage_costs(data, samples),
                          arm_stats=read_table(data.table("arm_stats"), "arm_stats")
                          .filter(pl.col("arm").is_in(cfg.arms.arms)).to_dicts(),
                          not_built=not_built(cfg, data), methods=list(cfg.train.methods),
                          deploy=read_measurements(data.deploy(cfg.run)),
                          deploy_evals=read_table(data.deploy(cfg.run) / "evals.parquet", "evals"),
                          deploy_margin=cfg.deploy.margin)
    return write_report(data.report(cfg.run), inputs, cfg.report)
