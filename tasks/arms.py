"""arms: the student training sets the hypotheses compare, in trl's conversational
prompt/completion form (one row per training example). The arms themselves are declared in
`schemas/experiment.py`; this module builds any declared arm from its parts:

    solution       the dataset's own solution
    explanation    the teacher's answer and short justification, without its chain of thought
    cot            the teacher's full selected trace (`<think>` reasoning kept)
    wrong_attempt  the teacher's shortest wrong attempt, quoted and marked wrong
"""

import re

import polars as pl

from schemas.experiment import ARM
from schemas.tables import SCHEMAS
from tasks.grade import grade
from tasks.prompts import answer_sentence, user_message
from tasks.select import by_length

WRONG_EXCERPT = 600  # characters of a wrong attempt quoted in the `mistakes` arm


def variant_of(arm: str) -> str:
    """The prompt variant the student sees."""
    return ARM[arm].prompt_variant


def source_variant(arm: str) -> str | None:
    """The prompt variant of the teacher samples the arm is built from (None: no teacher).
    `mistakes` shows the lecture to the student but is built from plain-variant attempts."""
    return ARM[arm].teacher_variant


def teacher_spend(samples: pl.DataFrame, teacher: str, arm: str) -> tuple[int, float | None]:
    """(tokens in + out, USD or None when unpriced) the teacher spent on the arm's source variant,
    all k paths counted; (0, 0.0) for arms built from the dataset alone."""
    if source_variant(arm) is None:
        return 0, 0.0
    own = samples.filter((pl.col("teacher") == teacher) & (pl.col("variant") == source_variant(arm)))
    tokens = int((own["prompt_tokens"].fill_null(0) + own["completion_tokens"].fill_null(0)).sum())
    return tokens, None if own["cost_usd"].null_count() else float(own["cost_usd"].sum())


def cot(reasoning: str | None, content: str) -> str:
    return f"<think>\n{reasoning}\n</think>\n{content}" if reasoning else content


def explanation(reasoning: str | None, content: str) -> str:
    """The teacher's answer with its short justification, without the chain of thought:
    the answer text when the reasoning came separately, else its closing paragraph (or
    closing two sentences)."""
    if reasoning:
        return content.strip()
    paragraphs = [p.strip() for p in content.split("\n\n") if p.strip()]
    if len(paragraphs) > 1:
        return paragraphs[-1]
    return " ".join(re.split(r"(?<=[.!?])\s+", content.strip())[-2:])


def ensure_answer(text: str, problem: dict) -> str:
    """Appends the gold answer sentence if `text` alone does not state it."""
    return text if grade(text, problem).correct else f"{text}\n{answer_sentence(problem)}".strip()


def wrong_attempt(wrong: dict) -> str:
    attempt = explanation(wrong["reasoning"], wrong["content"])[:WRONG_EXCERPT]
    said = f"({wrong['extracted']})" if wrong["extracted"] else "no clear answer"
    return (f'A tempting but wrong attempt: "{attempt}"\nThis attempt is wrong: it gives {said}, '
            f"which does not fit the facts above.")


# part name -> (problem, its selected correct trace or None, its shortest wrong attempt or None) -> text or None
PARTS = {
    "solution": lambda p, pick, wrong: p["solution"] or None,
    "explanation": lambda p, pick, wrong: explanation(pick["reasoning"], pick["content"]) or None if pick else None,
    "cot": lambda p, pick, wrong: cot(pick["reasoning"], pick["content"]) or None if pick else None,
    "wrong_attempt": lambda p, pick, wrong: wrong_attempt(wrong) if wrong else None,
}


def completion_for(arm: str, p: dict, pick: dict | None, wrong: dict | None) -> str | None:
    """The assistant turn of `arm` for problem `p` from `pick` (its selected correct teacher
    trace of the arm's source variant, if any); None when the arm has no example for it."""
    spec = ARM[arm]
    parts = {name: PARTS[name](p, pick, wrong) for name in spec.parts}
    if spec.needs and not any(parts[n] for n in spec.needs):
        return None
    text = "\n\n".join(t.strip() for t in parts.values() if t and t.strip())
    if spec.ending == "answer":
        return f"{text}\n{answer_sentence(p)}".strip()
    return ensure_answer(text, p) if spec.ending == "ensure" else text


def shortest_wrong(samples: pl.DataFrame, verdicts: pl.DataFrame, teacher: str) -> dict[str, dict]:
    """problem_id -> its shortest incorrect sample of the `mistakes` arm's source variant."""
    wrong = (
        samples.filter((pl.col("teacher") == teacher) & (pl.col("variant") == source_variant("mistakes")))
        .join(verdicts.select("sample_id", "correct", "extracted"), on="sample_id")
        .filter(pl.col("correct") == False)  # noqa: E712  (null = cannot judge: not a mistake)
    )
    out: dict[str, dict] = {}
    for r in wrong.iter_rows(named=True):  # shortest as selection measures it (tokens, else characters)
        if r["problem_id"] not in out or by_length(r) < by_length(out[r["problem_id"]]):
            out[r["problem_id"]] = r
    return out


def build_arm(arm: str, problems: pl.DataFrame, captions: dict[str, str], selected: pl.DataFrame,
              wrong: dict[str, dict], teacher: str) -> pl.DataFrame:
    chosen = selected.filter((pl.col("teacher") == teacher) & pl.col("sample_id").is_not_null())
    picks: dict[str, dict[str, list[dict]]] = {}  # problem -> variant -> selected traces (several: all_correct)
    for r in chosen.iter_rows(named=True):
        picks.setdefault(r["problem_id"], {}).setdefault(r["variant"], []).append(r)
    rows = []
    for p in problems.filter(pl.col("split") == "train").iter_rows(named=True):
        options = picks.get(p["problem_id"], {}).get(source_variant(arm)) or [None]
        for pick in options[:1] if source_variant(arm) is None else options:
            text = completion_for(arm, p, pick, wrong.get(p["problem_id"]))
            if not text:
                continue
            rows.append(dict(
                arm=arm, problem_id=p["problem_id"], split=p["split"], variant=variant_of(arm),
                prompt=[{"role": "user", "content": user_message(p, captions.get(p["problem_id"]), variant_of(arm))}],
                completion=[{"role": "assistant", "content": text}], image_sha=p["image_sha"],
                sample_id=pick["sample_id"] if pick else None,
            ))
    return pl.DataFrame(rows, schema=SCHEMAS["arms"])
