"""arms: the student training sets the hypotheses compare, in trl's conversational
prompt/completion form (one row per training example). The arms themselves are declared in
`schemas/experiment.py`; this module builds any declared arm from its parts:

    solution          the dataset's own solution
    teacher_solution  the teacher's answer and solution as written for a reader: its visible answer
                      text (a reasoning model's text after its reasoning; a chat model's whole reply)
    cot               the teacher's separate chain of thought in `<think>` tags, then its solution
                      (None when the teacher gave no reasoning apart from its answer)
    wrong_attempt     the teacher's shortest wrong attempt, quoted and marked wrong

Every completion ends with the gold answer sentence the students are graded on. Under
`arms.coverage: matched` every arm keeps only the training problems where every built arm has an
example, so the two sides of any contrast are trained on the same problems.
"""

import re

import polars as pl

from schemas.experiment import ARM, WRONG_VARIANT
from schemas.tables import SCHEMAS
from tasks.prompts import answer_sentence, user_message
from tasks.select import by_length, finished

WRONG_EXCERPT = 600  # characters of a wrong attempt quoted in the `mistakes` arm
NO_COT = ("the teacher gave no separate chain of thought (no reasoning field, <think> block or thought summary in "
          "its verified traces); sample.think_prompt asks a plain chat teacher for one")


def variant_of(arm: str) -> str:
    """The prompt variant the student sees."""
    return ARM[arm].prompt_variant


def source_variant(arm: str) -> str | None:
    """The prompt variant of the teacher samples the arm's solutions come from (None: no teacher)."""
    return ARM[arm].teacher_variant


def teacher_spend(samples: pl.DataFrame, teacher: str, arm: str) -> tuple[int, float | None]:
    """(tokens in + out, USD or None when unpriced) the teacher spent on every variant the arm reads,
    all k paths counted; (0, 0.0) for arms built from the dataset alone."""
    if not ARM[arm].variants:
        return 0, 0.0
    own = samples.filter((pl.col("teacher") == teacher) & pl.col("variant").is_in(ARM[arm].variants))
    tokens = int((own["prompt_tokens"].fill_null(0) + own["completion_tokens"].fill_null(0)).sum())
    return tokens, None if own["cost_usd"].null_count() else float(own["cost_usd"].sum())


def cot(trace: dict) -> str | None:
    reasoning = (trace["reasoning"] or "").strip()
    return f"<think>\n{reasoning}\n</think>\n{trace['content'].strip()}" if reasoning else None


def commit(text: str, problem: dict) -> str:
    """`text` ending with the gold answer sentence (appended unless the text already ends with it)."""
    sentence = answer_sentence(problem)
    text = text.strip()
    return text if text.endswith(sentence) else f"{text}\n{sentence}".strip()


def wrong_attempt(wrong: dict) -> str:
    attempt = wrong["content"].strip()[:WRONG_EXCERPT]
    said = f"({wrong['extracted']})" if wrong["extracted"] else "no clear answer"
    return (f'A tempting but wrong attempt: "{attempt}"\nThis attempt is wrong: it gives {said}, '
            f"which does not fit the facts above.")


# part name -> (problem, the teacher trace the example is built from or None, the shortest wrong attempt or None)
PARTS = {
    "solution": lambda p, trace, wrong: p["solution"] or None,
    "teacher_solution": lambda p, trace, wrong: (trace["content"] or "").strip() or None if trace else None,
    "cot": lambda p, trace, wrong: cot(trace) if trace else None,
    "wrong_attempt": lambda p, trace, wrong: wrong_attempt(wrong) if wrong else None,
}


def completion_for(arm: str, p: dict, trace: dict | None, wrong: dict | None) -> str | None:
    """The assistant turn of `arm` for problem `p` built from `trace`; None when a needed part is missing."""
    spec = ARM[arm]
    parts = {name: PARTS[name](p, trace, wrong) for name in spec.parts}
    if any(not parts[n] for n in spec.needs):
        return None
    return commit("\n\n".join(t.strip() for t in parts.values() if t and t.strip()), p)


def finished_samples(samples: pl.DataFrame, verdicts: pl.DataFrame, teacher: str) -> pl.DataFrame:
    """The teacher's finished samples (not truncated, answer committed to), with their verdicts."""
    own = samples.filter(pl.col("teacher") == teacher).join(
        verdicts.select("sample_id", "correct", "extracted", "reason"), on="sample_id", how="left")
    return own.filter(pl.Series([finished(r) for r in own.iter_rows(named=True)], dtype=pl.Boolean))


def shortest_wrong(samples: pl.DataFrame, verdicts: pl.DataFrame, teacher: str) -> dict[str, dict]:
    """problem_id -> its shortest finished incorrect sample of the wrong-attempt variant."""
    wrong = finished_samples(samples, verdicts, teacher).filter(
        (pl.col("variant") == WRONG_VARIANT) & (pl.col("correct") == False))  # noqa: E712  (null: cannot judge)
    out: dict[str, dict] = {}
    for r in wrong.iter_rows(named=True):  # shortest as selection measures it (tokens, else characters)
        if r["problem_id"] not in out or by_length(r) < by_length(out[r["problem_id"]]):
            out[r["problem_id"]] = r
    return out


def traces_by_problem(selected: pl.DataFrame, done: pl.DataFrame, teacher: str) -> dict[str, dict]:
    """kind (correct | first | all) -> problem_id -> variant -> traces, in order."""
    chosen = selected.filter((pl.col("teacher") == teacher) & pl.col("sample_id").is_not_null())
    out: dict[str, dict] = {"correct": {}, "first": {}, "all": {}}
    for r in chosen.iter_rows(named=True):
        out["correct"].setdefault(r["problem_id"], {}).setdefault(r["variant"], []).append(r)
    for r in done.sort("problem_id", "variant", "sample_index").iter_rows(named=True):
        out["all"].setdefault(r["problem_id"], {}).setdefault(r["variant"], []).append(r)
        out["first"].setdefault(r["problem_id"], {}).setdefault(r["variant"], [r])
    return out


def build_arm(arm: str, problems: pl.DataFrame, captions: dict[str, str], traces: dict[str, dict],
              wrong: dict[str, dict]) -> pl.DataFrame:
    """Every training example of `arm`, over all training problems (see `match` for coverage)."""
    spec = ARM[arm]
    rows = []
    for p in problems.filter(pl.col("split") == "train").iter_rows(named=True):
        pid = p["problem_id"]
        options = [None] if spec.traces == "none" else traces[spec.traces].get(pid, {}).get(spec.teacher_variant, [])
        attempt = wrong.get(pid) if "wrong_attempt" in spec.parts else None
        for trace in options:
            text = completion_for(arm, p, trace, attempt)
            if text:
                rows.append(dict(
                    arm=arm, problem_id=pid, split=p["split"], variant=variant_of(arm),
                    prompt=[{"role": "user", "content": user_message(p, captions.get(pid), variant_of(arm))}],
                    completion=[{"role": "assistant", "content": text}], image_sha=p["image_sha"],
                    sample_id=trace["sample_id"] if trace else None,
                    wrong_sample_id=attempt["sample_id"] if attempt else None))
    return pl.DataFrame(rows, schema=SCHEMAS["arms"])


def match(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Every non-empty arm restricted to the training problems all non-empty arms have an example for."""
    built = [df for df in frames.values() if df.height]
    if not built:
        return frames
    common = set.intersection(*(set(df["problem_id"]) for df in built))
    return {a: df.filter(pl.col("problem_id").is_in(sorted(common))) for a, df in frames.items()}


# "The answer is (B).", "**Answer:** (B)", "So the final answer is 4"; or an option alone: "(C) grapes"
ANSWER_LINE = re.compile(r"(?i:^[\W_]*(?:so,?\s+)?(?:the\s+)?(?:final\s+|correct\s+)?answer\b)|"
                         r"^[\s*]*\(?[A-Z]\)\s*(?:\S+\s*){0,3}$")


def answer_lines_only(text: str) -> bool:
    """Whether a completion states its answer and nothing else: every line an answer statement
    ("The answer is (B).", "(C) grapes"), under 5 other words in all."""
    rest = [ln for ln in text.splitlines() if ln.strip() and not ANSWER_LINE.search(ln.strip())]
    return sum(len(ln.split()) for ln in rest) < 5


def arm_stats(frames: dict[str, pl.DataFrame], before: dict[str, pl.DataFrame], verdicts: pl.DataFrame,
              coverage: str, reasons: dict[str, str]) -> pl.DataFrame:
    """Per arm: built or why not, problems and examples (and those left out to match coverage), the
    examples whose teacher answer disagrees with the dataset's (unverified arms), and the examples
    that quote a wrong attempt (arms with one)."""
    wrong_ids = set(verdicts.filter(pl.col("correct") == False)["sample_id"])  # noqa: E712
    rows = []
    for arm, df in frames.items():
        spec = ARM[arm]
        rows.append(dict(
            arm=arm, built=df.height > 0, reason=None if df.height else reasons.get(arm, "no training example"),
            coverage=coverage, problems=df["problem_id"].n_unique(), examples=df.height,
            unmatched_problems=before[arm]["problem_id"].n_unique() - df["problem_id"].n_unique(),
            answer_only=sum(answer_lines_only(c[0]["content"]) for c in df["completion"]),
            conflicts=int(df["sample_id"].is_in(sorted(wrong_ids)).sum()) if spec.traces in ("first", "all") else None,
            wrong_attempts=int(df["wrong_sample_id"].is_not_null().sum()) if "wrong_attempt" in spec.parts else None))
    return pl.DataFrame(rows, schema=SCHEMAS["arm_stats"])


def build_arms(arms: list[str], problems: pl.DataFrame, captions: dict[str, str], samples: pl.DataFrame,
               verdicts: pl.DataFrame, selected: pl.DataFrame, teacher: str,
               coverage: str) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """({arm: training examples}, arm_stats) for the configured arms."""
    done = finished_samples(samples, verdicts, teacher)
    traces, wrong = traces_by_problem(selected, done, teacher), shortest_wrong(samples, verdicts, teacher)
    before = {arm: build_arm(arm, problems, captions, traces, wrong) for arm in arms}
    frames = match(before) if coverage == "matched" else before
    reasons = {"teacher_cot": NO_COT} if "teacher_cot" in arms and not before["teacher_cot"].height else {}
    if coverage == "matched" and any(df.height for df in before.values()):
        reasons |= {a: "no training problem that every built arm covers" for a, df in before.items() if df.height}
    return frames, arm_stats(frames, before, verdicts, coverage, reasons)
