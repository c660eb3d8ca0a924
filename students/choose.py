"""Choosing a student on val, so that test is used once, for the final numbers: H3.6's best arm,
method and seed, and each `distill` round's teacher. Accuracy is that of the greedy answers to the
chain-of-thought prompt (else the first prompt style) under each model's own prompt variant, over the
problems whose gold can be judged.
"""

import polars as pl

from schemas.config import FactoryConfig
from schemas.experiment import ARM
from schemas.paths import DataDir
from schemas.tables import empty, read_table
from students.stages import students

SELECT_ON, REPORT_ON = "val", "test"
UNTRAINED = ("base", "reference")  # arms of the untuned student and of the reference models


def context_of(arm: str) -> str:
    """The prompt variant (test-time context) a model is asked with by default: its arm's; plain for the
    untuned student and the references."""
    return ARM[arm].prompt_variant if arm in ARM else "plain"


def greedy(evals: pl.DataFrame, variant: str | None = None) -> pl.DataFrame:
    """The answers accuracy is reported and chosen on: greedy, chain-of-thought prompt (else the first
    style), under each model's own prompt variant, or under `variant` for every model (a hypothesis asks
    both sides with the same test-time context)."""
    answers = asked_in(evals, variant).filter(pl.col("decoding") == "greedy")
    styles = answers["prompt_style"].unique().to_list()
    style = "cot" if "cot" in styles or not styles else sorted(styles)[0]
    return answers.filter(pl.col("prompt_style") == style)


def asked_in(evals: pl.DataFrame, variant: str | None = None) -> pl.DataFrame:
    """The answers given under each model's own prompt variant (or under `variant` for every model); rows
    without a variant (older evals) count as asked in it."""
    own = pl.col("arm").replace_strict({a: spec.prompt_variant for a, spec in ARM.items()}, default="plain")
    return evals.filter(pl.col("variant").is_null() | (pl.col("variant") == (own if variant is None else pl.lit(variant))))


def splits(evals: pl.DataFrame) -> tuple[str | None, str | None]:
    """(split the numbers are reported on, split choices are made on): test and val when both were
    evaluated; with a single split the choices see it (None: no separate split to choose on)."""
    have = set(evals["split"].drop_nulls().unique().to_list())
    report = REPORT_ON if REPORT_ON in have or not have else sorted(have)[0]
    return report, SELECT_ON if SELECT_ON in have and report != SELECT_ON else None


def accuracies(answers: pl.DataFrame) -> pl.DataFrame:
    """student, accuracy and n (judgeable answers) per trained student, most accurate first (ties by name)."""
    trained = answers.filter(~pl.col("arm").is_in(UNTRAINED) & pl.col("correct").is_not_null())
    return (trained.group_by("student").agg(pl.col("correct").cast(pl.Float64).mean().alias("accuracy"),
                                            pl.len().alias("n"))
            .sort(["accuracy", "student"], descending=[True, False]))


def best_student(evals: pl.DataFrame, arm: str | None) -> dict | None:
    """The most accurate trained student (of `arm` when given) on val, else on the reported split:
    {student, accuracy, n, split, on_val}; None when no trained student was evaluated."""
    report, select = splits(evals)
    split = select or report
    answers = greedy(evals).filter(pl.col("split") == split)
    if arm is not None:
        answers = answers.filter(pl.col("arm") == arm)
    ranked = accuracies(answers)
    if ranked.is_empty():
        return None
    return ranked.row(0, named=True) | {"split": split, "on_val": select is not None}


def run_evals(cfg: FactoryConfig, data: DataDir) -> pl.DataFrame:
    """The evals of every student and reference model this config evaluates, in run RUN."""
    names = students(cfg) + [f"reference-{r.name}" for r in cfg.reference]
    frames = [read_table(data.evals(cfg.run) / f"{name}.parquet", "evals") for name in names]
    return pl.concat(frames) if frames else empty("evals")

