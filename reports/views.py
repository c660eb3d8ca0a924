"""The evaluation views researchers report, from the evals table: chain-of-thought vs direct
answering, pass@k from sampled answers, answer accuracy vs reasoning accuracy (with the 2x2
table), training methods side by side per arm (SFT, GRPO, SFT -> GRPO), and accuracy broken down
by source (in- vs out-of-distribution test sources), subject, topic, grade and image (ScienceQA's NAT/SOC/LAN,
TXT/IMG/NO and G1-6/G7-12 when the problems come from ScienceQA)."""

import math

import polars as pl
from scipy.stats import norm

from reports.analysis import primary
from reports.stats import paired_interval, wilson
from students.choose import asked_in, splits
from tasks.select import pass_at_k

OVERLAP = "overlap with the reference solution (ROUGE-L)"
SCIENCEQA_SUBJECTS = {"natural science": "NAT", "social science": "SOC", "language science": "LAN"}


def cell(correct: pl.Series, confidence: float) -> dict:
    """Accuracy of the judgeable answers with its Wilson interval and n: one cell of a view."""
    c = correct.drop_nulls()
    k, n = int(c.sum()), c.len()
    lo, hi = wilson(k, n, confidence)
    return dict(accuracy=k / n if n else None, ci_low=lo, ci_high=hi, n=n)


def grid(df: pl.DataFrame, index: str, column: str, confidence: float) -> list[dict]:
    """Rows per `index` value, one cell per `column` value (None where that pair has no answers)."""
    names = sorted(str(v) for v in df[column].drop_nulls().unique())
    rows: dict = {}
    for (i, c), g in df.group_by(index, column):
        rows.setdefault(i, {index: i} | dict.fromkeys(names))[str(c)] = cell(g["correct"], confidence)
    return [rows[i] for i in sorted(rows)]


def reported(evals: pl.DataFrame) -> pl.DataFrame:
    """Greedy answers of every prompt style on the reported split, under each model's own prompt variant."""
    return asked_in(evals).filter((pl.col("decoding") == "greedy") & (pl.col("split") == splits(evals)[0]))


def cot_vs_direct(evals: pl.DataFrame, confidence: float) -> list[dict]:
    """Greedy accuracy per student with each evaluation prompt (only when both were used), and the
    paired difference on the problems both answered, with its interval."""
    answers = reported(evals)
    if set(answers["prompt_style"].unique()) != {"cot", "direct"}:
        return []
    rows = []
    for (student,), g in answers.group_by("student", maintain_order=True):
        cot, direct = (g.filter(pl.col("prompt_style") == s).select("problem_id", "correct") for s in ("cot", "direct"))
        pairs = cot.join(direct, on="problem_id", suffix="_direct").drop_nulls()
        if pairs.is_empty():  # a student answered one prompt only
            continue
        a, b = pairs["correct"], pairs["correct_direct"]
        only_cot, only_direct = int((a & ~b).sum()), int((~a & b).sum())
        lo, hi = paired_interval(only_cot, only_direct, pairs.height, confidence)
        rows.append(dict(student=student, cot=cell(cot["correct"], confidence),
                         direct=cell(direct["correct"], confidence), pairs=pairs.height,
                         cot_minus_direct=(only_cot - only_direct) / pairs.height,
                         ci_low=lo, ci_high=hi))
    return sorted(rows, key=lambda r: r["student"])


def mean_interval(values: list[float], confidence: float) -> tuple[float, float]:
    """Normal interval of a mean of per-problem values in [0, 1] (pass@j estimates are not 0/1), clipped."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = norm.ppf(1 - (1 - confidence) / 2) * sd / math.sqrt(n)
    return max(0.0, mean - half), min(1.0, mean + half)


def pass_at_k_table(evals: pl.DataFrame, confidence: float) -> list[dict]:
    """Mean unbiased pass@j over problems for j = 1..k, per student, from its sampled answers on the
    reported split, each with a normal interval over problems and n; greedy accuracy beside."""
    sampled = asked_in(evals).filter((pl.col("decoding") == "sampled") & pl.col("correct").is_not_null()
                                     & (pl.col("split") == splits(evals)[0]))
    if sampled.is_empty():
        return []
    per = sampled.group_by("student", "problem_id").agg(pl.len().alias("n"), pl.col("correct").sum().alias("c"))
    k = int(per["n"].max())
    greedy = {student: cell(g["correct"], confidence) for (student,), g in primary(evals).group_by("student")}
    rows = []
    for (student,), g in per.group_by("student", maintain_order=True):
        row = {"student": student, "problems": g.height}
        for j in range(1, k + 1):
            values = [pass_at_k(n, c, j) for n, c in g.select("n", "c").iter_rows()]
            lo, hi = mean_interval(values, confidence)
            row[f"pass@{j}"] = dict(accuracy=sum(values) / len(values), ci_low=lo, ci_high=hi, n=g.height)
        rows.append(row | {"greedy": greedy.get(student)})
    return sorted(rows, key=lambda r: r["student"])


def methods_by_arm(evals: pl.DataFrame, confidence: float) -> list[dict]:
    """Greedy accuracy per arm (rows) and training method (columns), each cell with its interval and n,
    when more than one method was trained: SFT, GRPO and SFT -> GRPO side by side."""
    trained = primary(evals).filter(~pl.col("arm").is_in(["base", "reference"]))
    if trained["method"].n_unique() < 2:
        return []
    return grid(trained, "arm", "method", confidence)


def answer_vs_reasoning(evals: pl.DataFrame, confidence: float) -> list[dict]:
    """Per student, on greedy chain-of-thought answers whose reasoning was scored: answer accuracy,
    reasoning accuracy (a judge's verdicts; without a judge the column is the overlap with the reference
    solution, ROUGE-L, never called reasoning accuracy), each with its interval, and the 2x2 counts."""
    df = primary(evals).filter(pl.col("reasoning_correct").is_not_null() & pl.col("correct").is_not_null())
    if df.is_empty():
        return []
    a, r = pl.col("correct"), pl.col("reasoning_correct")
    rouge = df["reasoning_judge"].fill_null("").str.starts_with("rouge-l").all()
    table = (df.group_by("student").agg(
        pl.len().alias("n"), (a & r).sum().alias("both_right"), (a & ~r).sum().alias("answer_right_reasoning_wrong"),
        (~a & r).sum().alias("answer_wrong_reasoning_right"), (~a & ~r).sum().alias("both_wrong"),
        pl.col("reasoning_judge").first().alias("judged_by"), a.alias("answers"), r.alias("reasonings"))
        .sort("student"))
    return [{k: v for k, v in row.items() if k not in ("answers", "reasonings")}
            | {"answer_accuracy": cell(pl.Series(row["answers"]), confidence),
               OVERLAP if rouge else "reasoning_accuracy": cell(pl.Series(row["reasonings"]), confidence)}
            for row in table.iter_rows(named=True)]


def answer_outcomes(evals: pl.DataFrame) -> list[dict]:
    """Per student, the share of its reported answers counted wrong before their content is judged, each
    answer in the first that applies: the request failed, cut by the token limit (truncated), no answer
    could be graded (ungradable: timeout / grader error), no answer committed to (unanswered)."""
    df = primary(evals).filter(pl.col("correct").is_not_null() | (pl.col("grader") == "failed"))
    if df.is_empty():
        return []
    failed = pl.col("grader") == "failed"
    truncated = ~failed & (pl.col("finished") == False)  # noqa: E712  (null: an old evals file, not known)
    ungradable = ~failed & ~truncated.fill_null(False) & pl.col("grader").is_in(["timeout", "error"])
    unanswered = ~failed & ~truncated.fill_null(False) & ~ungradable & (pl.col("found_by") == "none")
    return (df.group_by("student").agg(
        pl.len().alias("n"), *(x.fill_null(False).cast(pl.Float64).mean().alias(name) for name, x in (
            ("failed", failed), ("truncated", truncated), ("ungradable", ungradable), ("unanswered", unanswered))))
        .sort("student").to_dicts())


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


def breakdowns(evals: pl.DataFrame, problems: pl.DataFrame, confidence: float) -> dict[str, list[dict]]:
    """Accuracy per student (rows) and category value (columns), each cell with its interval and n, for
    each category with more than one value."""
    joined = primary(evals).join(categories(problems), on="problem_id", how="left")
    out = {}
    for col in ("source", "scienceqa_subject", "scienceqa_context", "scienceqa_grade", "subject", "topic", "grade",
                "image"):
        if joined[col].drop_nulls().unique().len() < 2:
            continue
        out[col] = grid(joined.filter(pl.col(col).is_not_null()), "student", col, confidence)
    return out


def trained_sources(problems: pl.DataFrame) -> list[str]:
    """Sources with training problems: the by-source table marks them (the others are out of distribution)."""
    return sorted(problems.filter(pl.col("split") == "train")["source"].drop_nulls().unique().to_list())
