"""The evaluation views researchers report, from the evals table: chain-of-thought vs direct
answering, pass@k from sampled answers, answer accuracy vs reasoning accuracy (with the 2x2
table), training methods side by side per arm (SFT, GRPO, SFT -> GRPO), and accuracy broken down
by source (in- vs out-of-distribution test sources), subject, topic, grade and image (ScienceQA's NAT/SOC/LAN,
TXT/IMG/NO and G1-6/G7-12 when the problems come from ScienceQA)."""

import polars as pl

from reports.analysis import primary
from tasks.select import pass_at_k

OVERLAP = "overlap with the reference solution (ROUGE-L)"
SCIENCEQA_SUBJECTS = {"natural science": "NAT", "social science": "SOC", "language science": "LAN"}


def cot_vs_direct(evals: pl.DataFrame) -> pl.DataFrame:
    """Greedy accuracy per student with each evaluation prompt (only when both were used)."""
    greedy = evals.filter(pl.col("decoding") == "greedy")
    if set(greedy["prompt_style"].unique()) != {"cot", "direct"}:
        return pl.DataFrame()
    acc = greedy.group_by("student", "prompt_style").agg(pl.col("correct").cast(pl.Float64).mean())
    wide = acc.pivot(on="prompt_style", index="student", values="correct").select("student", "cot", "direct")
    return wide.with_columns((pl.col("cot") - pl.col("direct")).alias("cot_minus_direct")).sort("student")


def pass_at_k_table(evals: pl.DataFrame) -> pl.DataFrame:
    """Mean unbiased pass@j over problems for j = 1..k, per student, from its sampled answers (failed,
    truncated and unanswered samples are incorrect ones: `correct` is false for them); n problems and the
    greedy accuracy beside."""
    sampled = evals.filter((pl.col("decoding") == "sampled") & pl.col("correct").is_not_null())
    if sampled.is_empty():
        return pl.DataFrame()
    per = sampled.group_by("student", "problem_id").agg(pl.len().alias("n"), pl.col("correct").sum().alias("c"))
    k = int(per["n"].max())
    rows = []
    for (student,), g in per.group_by("student", maintain_order=True):
        row = {"student": student, "n": g.height}  # problems; a failed sample counts as incorrect
        for j in range(1, k + 1):
            row[f"pass@{j}"] = sum(pass_at_k(n, c, j) for n, c in g.select("n", "c").iter_rows()) / g.height
        rows.append(row)
    greedy = primary(evals).group_by("student").agg(pl.col("correct").cast(pl.Float64).mean().alias("greedy"))
    return pl.DataFrame(rows).join(greedy, on="student", how="left").sort("student")


def methods_by_arm(evals: pl.DataFrame) -> pl.DataFrame:
    """Greedy accuracy per arm (rows) and training method (columns), with pass@k where sampled, when
    more than one method was trained: SFT, GRPO and SFT -> GRPO side by side."""
    trained = primary(evals).filter(~pl.col("arm").is_in(["base", "reference"]))
    if trained["method"].n_unique() < 2:
        return pl.DataFrame()
    acc = trained.group_by("arm", "method").agg(pl.col("correct").cast(pl.Float64).mean())
    return acc.pivot(on="method", index="arm", values="correct", sort_columns=True).sort("arm")


def answer_vs_reasoning(evals: pl.DataFrame) -> pl.DataFrame:
    """Per student, on greedy chain-of-thought answers whose reasoning was scored: answer accuracy,
    reasoning accuracy (a judge's verdicts; without a judge the column is the overlap with the reference
    solution, ROUGE-L, never called reasoning accuracy) and the 2x2 counts."""
    df = primary(evals).filter(pl.col("reasoning_correct").is_not_null() & pl.col("correct").is_not_null())
    if df.is_empty():
        return pl.DataFrame()
    a, r = pl.col("correct"), pl.col("reasoning_correct")
    rouge = df["reasoning_judge"].fill_null("").str.starts_with("rouge-l").all()
    return (df.group_by("student").agg(
        pl.len().alias("n"), a.cast(pl.Float64).mean().alias("answer_accuracy"),
        r.cast(pl.Float64).mean().alias(OVERLAP if rouge else "reasoning_accuracy"), (a & r).sum().alias("both_right"),
        (a & ~r).sum().alias("answer_right_reasoning_wrong"), (~a & r).sum().alias("answer_wrong_reasoning_right"),
        (~a & ~r).sum().alias("both_wrong"), pl.col("reasoning_judge").first().alias("judged_by"))
        .sort("student"))


def answer_outcomes(evals: pl.DataFrame) -> pl.DataFrame:
    """Per student, the share of its reported answers counted wrong before their content is judged, each
    answer in the first that applies: the request failed, cut by the token limit (truncated), no answer
    could be graded (ungradable: timeout / grader error), no answer committed to (unanswered)."""
    df = primary(evals).filter(pl.col("correct").is_not_null() | (pl.col("grader") == "failed"))
    if df.is_empty():
        return pl.DataFrame()
    failed = pl.col("grader") == "failed"
    truncated = ~failed & (pl.col("finished") == False)  # noqa: E712  (null: an old evals file, not known)
    ungradable = ~failed & ~truncated.fill_null(False) & pl.col("grader").is_in(["timeout", "error"])
    unanswered = ~failed & ~truncated.fill_null(False) & ~ungradable & (pl.col("found_by") == "none")
    return (df.group_by("student").agg(
        pl.len().alias("n"), *(x.fill_null(False).cast(pl.Float64).mean().alias(name) for name, x in (
            ("failed", failed), ("truncated", truncated), ("ungradable", ungradable), ("unanswered", unanswered))))
        .sort("student"))


def categories(problems: pl.DataFrame) -> pl.DataFrame:
    """problem_id and its breakdown categories: subject, topic, grade, image (with / without), and
    for ScienceQA its conventional subject, context and grade bands."""
    cols = [pl.col("subject").fill_null("?"), pl.col("topic").fill_null("?"), pl.col("grade").fill_null("?"),
            pl.when(pl.col("image_sha").is_not_null()).then(pl.lit("with image")).otherwise(pl.lit("no image"))
            .alias("image")]
    out = problems.select("problem_id", "source", *cols)
    sqa = pl.col("source") == "scienceqa"
    grade_num = pl.col("grade").str.extract(r"(\d+)").cast(pl.Int32, strict=False)
    context = (pl.when(problems["image_sha"].is_not_null()).then(pl.lit("IMG"))
               .when(problems["hint"].fill_null("").str.strip_chars() != "").then(pl.lit("TXT")).otherwise(pl.lit("NO")))
    return out.with_columns(
        pl.when(sqa).then(pl.col("subject").replace_strict(SCIENCEQA_SUBJECTS, default="?")).alias("scienceqa_subject"),
        pl.when(sqa).then(context).alias("scienceqa_context"),
        pl.when(sqa).then(pl.when(grade_num <= 6).then(pl.lit("G1-6")).when(grade_num >= 7).then(pl.lit("G7-12")))
        .alias("scienceqa_grade"))


def breakdowns(evals: pl.DataFrame, problems: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Accuracy per student (rows) and category value (columns), for each category with more than one value."""
    joined = primary(evals).join(categories(problems), on="problem_id", how="left")
    out = {}
    for col in ("source", "scienceqa_subject", "scienceqa_context", "scienceqa_grade", "subject", "topic", "grade",
                "image"):
        values = joined[col].drop_nulls().unique()
        if values.len() < 2:
            continue
        out[col] = (joined.filter(pl.col(col).is_not_null())
                    .group_by("student", col).agg(pl.col("correct").cast(pl.Float64).mean())
                    .pivot(on=col, index="student", values="correct", sort_columns=True).sort("student"))
    return out
