"""The report's numbers, from the evals table (one row per student or reference, problem, prompt
style, decoding and sample index): accuracy with intervals, the hypothesis verdicts, H3.6 against
the reference models, and the evaluation views (CoT vs direct, pass@k, answer vs reasoning,
breakdowns). Plain functions of polars frames; `reports/report.py` writes them out.
"""

import math

import polars as pl

from reports.stats import (
    bootstrap_ci,
    detectable_difference,
    discordant,
    holm,
    mcnemar_exact,
    paired_bootstrap_diff,
    problems_needed,
)
from schemas.config import ReportConfig
from schemas.experiment import ARM, H36_CLAIM, HYPOTHESES, Hypothesis

REFERENCE = "reference"  # the `arm` of a reference model's rows


def primary(evals: pl.DataFrame, variant: str | None = None) -> pl.DataFrame:
    """The answers accuracy is reported on: greedy, chain-of-thought prompt (else the first style), under
    each model's own prompt variant (its arm's; plain for the base student and references), or under
    `variant` for every model (a hypothesis compared with the same test-time context on both sides)."""
    greedy = evals.filter(pl.col("decoding") == "greedy")
    styles = greedy["prompt_style"].unique().to_list()
    style = "cot" if "cot" in styles or not styles else sorted(styles)[0]
    own = pl.col("arm").replace_strict({a: spec.prompt_variant for a, spec in ARM.items()}, default="plain")
    asked = pl.col("variant").is_null() | (pl.col("variant") == (own if variant is None else pl.lit(variant)))
    return greedy.filter((pl.col("prompt_style") == style) & asked)


def verdict(lo: float, hi: float, direction: str) -> str:
    """supported: the interval excludes 0 on the predicted side; contradicted: on the other side."""
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    above, below = lo > 0, hi < 0
    if direction == "higher":
        return "supported" if above else "contradicted" if below else "inconclusive"
    return "supported" if below else "contradicted" if above else "inconclusive"


def accuracy(df: pl.DataFrame, cfg: ReportConfig) -> dict:
    correct = df["correct"].drop_nulls().cast(pl.Float64).to_numpy()  # null: gold not judgeable, or failed
    lo, hi = bootstrap_ci(correct, cfg.n_bootstrap, cfg.confidence, cfg.seed)
    return dict(accuracy=float(correct.mean()) if correct.size else float("nan"), ci_low=lo, ci_high=hi,
                n=int(correct.size))


def student_rows(evals: pl.DataFrame, metas: dict[str, dict], teacher_tokens: dict[str, int],
                 teacher_usd: dict[str, float | None], cfg: ReportConfig) -> list[dict]:
    """Per student or reference: accuracy and interval, training and inference costs."""
    rows = []
    for (student,), g in primary(evals).group_by("student", maintain_order=True):
        meta, arm = metas.get(student, {}), g["arm"][0]
        cost = g["cost_usd"]
        rows.append(dict(student=student, arm=arm, method=g["method"][0], seed=g["seed"][0], **accuracy(g, cfg),
                         answer_tokens=float(g["generated_tokens"].mean()), answer_s=float(g["latency_s"].mean()),
                         answer_usd=None if cost.null_count() else float(cost.mean()),
                         train_examples=meta.get("train_examples", 0), train_wall_s=meta.get("wall_s", 0.0),
                         train_tokens=meta.get("train_tokens", 0), too_long=meta.get("too_long", 0),
                         device=meta.get("device", ""), teacher_tokens=teacher_tokens.get(arm, 0),
                         teacher_usd=teacher_usd.get(arm, 0.0 if arm in ("base", REFERENCE) else None)))
    return rows


def seed_summary(students: list[dict]) -> list[dict]:
    """Mean and sd of accuracy across seeds per (arm, method); only arms trained with several seeds."""
    df = pl.DataFrame([s for s in students if s["seed"] is not None], infer_schema_length=None)
    if df.is_empty():
        return []
    out = (df.group_by("arm", "method").agg(pl.len().alias("seeds"), pl.col("accuracy").mean().alias("mean"),
                                            pl.col("accuracy").std().alias("sd"))
           .filter(pl.col("seeds") > 1).sort("arm", "method"))
    return out.to_dicts()


def declared_hypotheses(cfg: ReportConfig) -> list[Hypothesis]:
    return [*HYPOTHESES, *(Hypothesis(h.id, h.claim, h.treatment, h.control, h.direction) for h in cfg.hypotheses)]


def compare(treat: pl.DataFrame, control: pl.DataFrame, cfg: ReportConfig) -> dict | None:
    """Paired comparison on the problems both answered (judgeable ones only)."""
    pairs = (treat.select("problem_id", "correct").join(control.select("problem_id", "correct"), on="problem_id",
                                                          suffix="_control")
             .drop_nulls(["correct", "correct_control"]))
    if pairs.is_empty():
        return None
    a, b = (pairs[c].cast(pl.Float64).to_numpy() for c in ("correct", "correct_control"))
    diff, lo, hi = paired_bootstrap_diff(a, b, cfg.n_bootstrap, cfg.confidence, cfg.seed)
    only_t, only_c = discordant(a, b)
    share = (only_t + only_c) / a.size
    return dict(n=int(a.size), difference=diff, ci_low=lo, ci_high=hi, only_treatment=only_t,
                only_control=only_c, p_value=mcnemar_exact(a, b),
                detectable=detectable_difference(a.size, share, cfg.alpha, cfg.power),
                needed=problems_needed(diff, share, cfg.alpha, cfg.power))


def hypothesis_rows(evals: pl.DataFrame, cfg: ReportConfig) -> list[dict]:
    """Every declared hypothesis, per training method and seed, on the same test problems; then
    H3.6 (the best arm against each reference model). Holm adjusts the McNemar p-values over the
    whole table."""
    rows = []
    for h in declared_hypotheses(cfg):
        context = ARM[h.treatment].prompt_variant  # both sides asked alike: the treatment's test-time context
        trained = primary(evals, context).filter(~pl.col("arm").is_in(["base", REFERENCE]))
        for (method, seed), g in trained.group_by("method", "seed", maintain_order=True):
            by_arm = {arm: part for (arm,), part in g.group_by("arm")}
            if h.treatment in by_arm and h.control in by_arm and (c := compare(by_arm[h.treatment],
                                                                              by_arm[h.control], cfg)):
                rows.append(dict(hypothesis=h.id, claim=h.claim, method=method, seed=seed, treatment=h.treatment,
                                 control=h.control, direction=h.direction, context=context, **c))
    rows += h36_rows(evals, cfg)
    for r, p in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        r["p_holm"] = p
        r["verdict"] = verdict(r["ci_low"], r["ci_high"], r["direction"])
    return sorted(rows, key=lambda r: (r["hypothesis"], r["method"], r["seed"] if r["seed"] is not None else -1))


def best_student(main: pl.DataFrame, cfg: ReportConfig) -> tuple[str, bool] | None:
    """(student, chosen after seeing the evaluation split?) for H3.6."""
    trained = main.filter(~pl.col("arm").is_in(["base", REFERENCE]))
    if cfg.best_arm:
        trained = trained.filter(pl.col("arm") == cfg.best_arm)
    if trained.is_empty():
        return None
    acc = trained.group_by("student").agg(pl.col("correct").cast(pl.Float64).mean()).sort("correct", "student",
                                                                                           descending=[True, False])
    return acc["student"][0], cfg.best_arm is None


def h36_rows(evals: pl.DataFrame, cfg: ReportConfig) -> list[dict]:
    main = primary(evals)
    best = best_student(main, cfg)
    if best is None:
        return []
    student, post_hoc = best
    treat = main.filter(pl.col("student") == student)
    context = ARM[treat["arm"][0]].prompt_variant  # the reference asked as the best arm is
    refs = primary(evals, context).filter(pl.col("arm") == REFERENCE)
    rows = []
    for (ref,), g in refs.group_by("student", maintain_order=True):
        if c := compare(treat, g, cfg):
            rows.append(dict(hypothesis="H3.6", claim=H36_CLAIM, method=treat["method"][0], seed=treat["seed"][0],
                             treatment=student + (" (best, chosen on this split)" if post_hoc else ""),
                             control=ref, direction="higher", context=context, **c))
    return rows
