"""The hypothesis table: one row per declared hypothesis and training method (and per reference
model for H3.6), each a verdict or "not tested" with the reason.

The verdict is the test: the exact McNemar test on the test split's paired answers, all training
seeds pooled as strata (their discordant pairs add up), Holm-adjusted over the rows tested;
supported / contradicted when the adjusted p <= report.alpha, by the sign of the difference
relative to the prediction, else inconclusive. Anything chosen (H3.6's best student) is chosen on
val (`students/choose.py`); without a val split H3.6 is exploratory and has no verdict. H1 (the
tool-calling student against a zero-shot reference) is decided on val, as the plan states it; H2 (a
soft-prompted vlm against the same model zero-shot) on the reported split; both join the Holm family.
"""

import math

import numpy as np
import polars as pl

from reports.stats import detectable_difference, holm, mcnemar_p, paired_interval, problems_needed
from reports.tools import reference_answers, tool_answers
from schemas.config import ReportConfig
from schemas.experiment import ARM, H1_CLAIM, H2_CLAIM, H36_CLAIM, HYPOTHESES, Hypothesis
from students.choose import best_student, context_of, greedy, splits
from students.tools import TOOLS

# Methods whose training data is the arm's prompts alone (GRPO from train.init samples its own
# completions), so two arms with the same prompts give them the same data.
PROMPTS_ONLY = ("grpo",)
NEEDED_LIMIT = 1_000_000  # pairs; beyond it "problems needed" is shown as more than the limit
BLANK = dict(n=None, seeds=[], difference=None, ci_low=None, ci_high=None, only_treatment=None, only_control=None,
             p_value=None, p_holm=None, detectable=None, discordance=None, discordance_from=None, needed=None,
             per_seed=[], seed_sd=None)


def declared(cfg: ReportConfig) -> list[Hypothesis]:
    return [*HYPOTHESES, *(Hypothesis(h.id, h.claim, h.treatment, h.control, h.direction) for h in cfg.hypotheses)]


def short_claim(treatment: str, control: str, direction: str) -> str:
    return f"{treatment} {direction} than {control}"


def strata(arms: dict, arm: str, method: str) -> dict[int, pl.DataFrame]:
    """Per training seed, (problem_id, correct) of the arm trained with the method."""
    part = arms.get((arm, method))
    if part is None:
        return {}
    return {seed if seed is not None else 0: g.select("problem_id", "correct")
            for (seed,), g in part.group_by("seed", maintain_order=True)}


def counts(treat: pl.DataFrame, control: pl.DataFrame) -> tuple[int, int, int]:
    """(pairs, b, c) over the problems both answered and whose gold can be judged."""
    pairs = treat.join(control, on="problem_id", suffix="_control").drop_nulls(["correct", "correct_control"])
    t, c = pairs["correct"], pairs["correct_control"]
    return pairs.height, int((t & ~c).sum()), int((~t & c).sum())


def power_columns(n: int, b: int, c: int, direction: str, seeds: int, cfg: ReportConfig) -> dict:
    """The smallest difference these pairs detect, under a stated discordance, and the problems the
    observed difference would need (only when it points the predicted way)."""
    observed = (b + c) / n
    if cfg.discordance is not None:
        share, source = cfg.discordance, "set (report.discordance)"
    else:
        share, source = max(observed, cfg.discordance_floor), "observed" if observed >= cfg.discordance_floor \
            else "floor (report.discordance_floor)"
    diff = (b - c) / n
    predicted = diff > 0 if direction == "higher" else diff < 0
    pairs = problems_needed(diff, share, cfg.alpha, cfg.power, NEEDED_LIMIT) if predicted else None
    return dict(detectable=detectable_difference(n, share, cfg.alpha, cfg.power), discordance=share,
                discordance_from=source, needed=None if pairs is None else math.ceil(pairs / seeds))


def compare(treat: dict, control: dict, direction: str, cfg: ReportConfig) -> dict | str:
    """The pooled paired comparison over the seeds both arms have; a string says why there is none."""
    seeds = sorted(set(treat) & set(control))
    if not seeds:
        return "no training seed in common"
    per = [dict(zip(("n", "only_treatment", "only_control"), counts(treat[s], control[s]), strict=True)) | {"seed": s}
           for s in seeds]
    n, b, c = (sum(p[k] for p in per) for k in ("n", "only_treatment", "only_control"))
    if n == 0:
        return "no test problem both answered with a judgeable gold"
    for p in per:
        p["difference"] = (p["only_treatment"] - p["only_control"]) / p["n"] if p["n"] else None
    diffs = [p["difference"] for p in per if p["difference"] is not None]
    lo, hi = paired_interval(b, c, n, cfg.confidence)
    return dict(n=n, seeds=seeds, difference=(b - c) / n, ci_low=lo, ci_high=hi, only_treatment=b, only_control=c,
                p_value=mcnemar_p(b, c), per_seed=per, seed_sd=float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
                **power_columns(n, b, c, direction, len(seeds), cfg))


def missing(arm: str, method: str, arms: dict, why: dict[str, str]) -> str | None:
    """Why the arm trained with the method has no test answers (None: it has some)."""
    if (arm, method) in arms:
        return None
    return f"{arm} not trained: {why.get(f'{arm}-{method}') or why.get(arm) or 'not in this run'}"


def same_data(h: Hypothesis, method: str) -> bool:
    spec_t, spec_c = ARM.get(h.treatment), ARM.get(h.control)
    return method in PROMPTS_ONLY and spec_t is not None and spec_c is not None and \
        spec_t.prompt_variant == spec_c.prompt_variant


def arm_row(h: Hypothesis, method: str, arms: dict, why: dict[str, str], cfg: ReportConfig) -> dict:
    """`arms`: (arm, method) -> test answers, both sides asked with the treatment's test-time context."""
    row = dict(hypothesis=h.id, claim=h.claim, short=short_claim(h.treatment, h.control, h.direction), method=method,
               treatment=h.treatment, control=h.control, direction=h.direction, context=context_of(h.treatment),
               **BLANK)
    reason = missing(h.treatment, method, arms, why) or missing(h.control, method, arms, why)
    if reason is None and same_data(h, method):
        reason = f"same training data ({method} trains on the arms' prompts, identical for these arms)"
    if reason is None:
        c = compare(strata(arms, h.treatment, method), strata(arms, h.control, method), h.direction, cfg)
        reason, row = (c, row) if isinstance(c, str) else (too_few(c["n"], cfg.alpha), row | c)
    return row | dict(verdict=f"not tested: {reason}" if reason else None, tested=reason is None)


def h36_rows(evals: pl.DataFrame, report: str, cfg: ReportConfig) -> list[dict]:
    """The best trained student (chosen on val) against each reference model on test, the references asked
    with the best arm's test-time context."""
    best = best_student(evals, cfg.best_arm)
    context = context_of(evals.filter(pl.col("student") == best["student"])["arm"][0]) if best else "plain"
    base = dict(hypothesis="H3.6", claim=H36_CLAIM, short="best arm more accurate than a zero-shot reference",
                direction="higher", context=context, **BLANK)
    answers = greedy(evals, context).filter(pl.col("split") == report)
    refs = answers.filter(pl.col("arm") == "reference")["student"].unique(maintain_order=True).to_list()
    if best is None or not refs:
        why = "no trained student was evaluated" if best is None else "no reference model (`reference:` in the config)"
        return [base | dict(method="", treatment=cfg.best_arm or "best", control="reference", verdict=f"not tested: "
                            f"{why}", tested=False)]
    chosen = answers.filter(pl.col("student") == best["student"])
    label = f"{best['student']} (best on {best['split']}: {best['accuracy']:.1%})"
    rows = []
    for ref in refs:
        c = compare({0: chosen.select("problem_id", "correct")},
                    {0: answers.filter(pl.col("student") == ref).select("problem_id", "correct")}, "higher", cfg)
        row = base | dict(method=chosen["method"][0], treatment=label, control=ref, tested=False)
        if isinstance(c, str):
            rows.append(row | dict(verdict=f"not tested: {c}"))
        elif few := too_few(c["n"], cfg.alpha):
            rows.append(row | c | dict(verdict=f"not tested: {few}"))
        else:
            rows.append(row | c | dict(tested=best["on_val"], verdict=None if best["on_val"] else
                                       "exploratory (no val split: the best student was chosen on test)"))
    return rows


def decided(row: dict, c: dict | str, alpha: float) -> dict:
    """A row with its comparison, or "not tested" with the reason (no comparison, too few pairs)."""
    if isinstance(c, str):
        return row | dict(verdict=f"not tested: {c}", tested=False)
    if few := too_few(c["n"], alpha):
        return row | c | dict(verdict=f"not tested: {few}", tested=False)
    return row | c | dict(verdict=None, tested=True)


def h1_rows(evals: pl.DataFrame, cfg: ReportConfig) -> list[dict]:
    """H1: each student answering with the tools offered against each zero-shot reference (asked plain), on
    val, as the plan states it."""
    base = dict(hypothesis="H1", claim=H1_CLAIM, short="tool-calling student more accurate than a zero-shot "
                "reference (on val)", direction="higher", context=TOOLS, **BLANK)
    blank = base | dict(method="", treatment="tool-calling student", control="reference")
    if evals.filter(pl.col("variant") == TOOLS).is_empty():  # first: most runs have no tools answers
        return [decided(blank, "needs evaluate.tools (students answering with the caption and lecture tools)",
                        cfg.alpha)]
    tools, refs = (f(evals).filter(pl.col("split") == "val") for f in (tool_answers, reference_answers))
    why = ("needs a val split (H1 is decided on val: evaluate.splits)" if tools.is_empty() else
           "needs a zero-shot reference model evaluated on val (`reference:` in the config)" if refs.is_empty() else
           None)
    if why:
        return [decided(blank, why, cfg.alpha)]
    return [decided(base | dict(method=g["method"][0], treatment=f"{student} (tools)", control=ref),
                    compare({0: g.select("problem_id", "correct")},
                            {0: refs.filter(pl.col("student") == ref).select("problem_id", "correct")}, "higher", cfg),
                    cfg.alpha)
            for (student,), g in tools.group_by("student", maintain_order=True)
            for ref in refs["student"].unique(maintain_order=True)]


def h2_rows(evals: pl.DataFrame, kinds: dict[str, str], report: str, cfg: ReportConfig) -> list[dict]:
    """H2: each soft-prompted (prompt_tuning) vlm student against the same model zero-shot (the `base`
    student) on the reported split, both asked with the student's arm's test-time context. One row per
    student (arm and seed): the zero-shot side is one deterministic set of answers, so pooling seeds
    against it would count each of its answers once per seed as if independent."""
    base = dict(hypothesis="H2", claim=H2_CLAIM, short="soft-prompted vlm more accurate than the same model "
                "zero-shot", method="prompt_tuning", direction="higher", control="base", **BLANK)
    soft = evals.filter((pl.col("method") == "prompt_tuning") & pl.col("student").is_in(
        [s for s, k in kinds.items() if k == "vlm"]))
    why = ("needs a `vlm` student trained with `prompt_tuning` (train.student: vlm, train.methods: [prompt_tuning])"
           if soft.is_empty() else "needs the same model zero-shot (evaluate.baseline: true)"
           if evals.filter(pl.col("arm") == "base").is_empty() else None)
    if why:
        return [decided(base | dict(treatment="soft-prompted vlm", context="plain"), why, cfg.alpha)]
    rows = []
    for (student, arm), _ in soft.group_by("student", "arm", maintain_order=True):
        context = context_of(arm)
        answers = greedy(evals, context).filter(pl.col("split") == report)
        zero = answers.filter(pl.col("arm") == "base").select("problem_id", "correct")
        row = base | dict(treatment=f"{student} (vlm)", context=context)
        c = compare({0: answers.filter(pl.col("student") == student).select("problem_id", "correct")}, {0: zero},
                    "higher", cfg) if zero.height else \
            f"the base student has no {report} answers asked with {arm}'s test-time context ({context})"
        rows.append(decided(row, c, cfg.alpha))
    return rows


def too_few(n: int, alpha: float) -> str | None:
    """Decided by n alone, before any outcome is looked at: pairs that could not reach alpha even if
    every one of them went one way do not enter the family."""
    if 2 * 0.5**n > alpha:
        return f"too few problems ({n} pairs: even all of them one way could not reach p <= {alpha})"
    return None


def word(p_holm: float, difference: float, direction: str, alpha: float) -> str:
    if p_holm > alpha:
        return "inconclusive"
    agrees = difference > 0 if direction == "higher" else difference < 0
    return "supported" if agrees else "contradicted"


def hypothesis_rows(evals: pl.DataFrame, methods: list[str], why: dict[str, str], cfg: ReportConfig,
                    kinds: dict[str, str] | None = None) -> list[dict]:
    """Every declared hypothesis per method, then H3.6, H1 and H2 (`kinds`: each trained student's kind,
    causal_lm or vlm); Holm over the rows tested. Both sides of an arm's row are asked with the treatment's
    test-time context (with the lecture, or plain)."""
    report, _ = splits(evals)
    contexts = {context_of(h.treatment) for h in declared(cfg)}
    arms = {c: greedy(evals, c).filter(pl.col("split") == report).partition_by("arm", "method", as_dict=True)
            for c in contexts}  # context -> (arm, method) -> its answers
    rows = [arm_row(h, m, arms[context_of(h.treatment)], why, cfg) for h in declared(cfg) for m in methods]
    rows += h36_rows(evals, report, cfg) + h1_rows(evals, cfg) + h2_rows(evals, kinds or {}, report, cfg)
    tested = [r for r in rows if r["tested"]]
    for r, p in zip(tested, holm([r["p_value"] for r in tested]), strict=True):
        r["p_holm"], r["verdict"] = p, word(p, r["difference"], r["direction"], cfg.alpha)
    return rows
