"""select: keep trace(s) per (problem, teacher, variant) by policy; pass@k per problem.

Policies (plain functions from a group's samples to the kept ones, identical traces once):
    shortest_correct      the correct trace with the fewest completion tokens (default)
    all_correct           every distinct correct trace
    length_capped         the shortest correct trace within `max_tokens` completion tokens
    reflection_truncated  the shortest correct trace, cut after its first committed answer
                          when re-checks ("Wait,", "But wait", "Let me double-check") follow

"Shortest" ranks within the most complete traces first: one that gives a solution beside its answer
line, then one with a separate chain of thought; a trace that only states its answer ("The answer is
(B).") is kept only where no correct trace says more, and is counted by the arms stage.

Only finished traces are kept (`finished_only`, default): not truncated (finish reason `length`) and
with an answer the response commits to (`found_by` not `none`: no answer is read from a number or an
option letter that merely occurs). `n_unfinished` counts the samples of a group left out for it.
"""

import re
from math import comb

import polars as pl

from schemas.tables import SCHEMAS


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k samples correct) from n samples, c correct."""
    if n == 0 or k > n:
        return float("nan")
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_rates(selected: pl.DataFrame) -> pl.DataFrame:
    """Per (teacher, variant): problems, problems solved at least once, k, mean pass@1 and pass@k;
    each problem counted once (all_correct keeps several rows per problem)."""
    return (selected.unique(["problem_id", "teacher", "variant"], keep="first")
            .group_by("teacher", "variant")
            .agg(pl.len().alias("problems"), (pl.col("n_correct") > 0).sum().alias("solved"),
                 pl.col("n_samples").max().alias("k"), pl.col("pass_at_1").mean(), pl.col("pass_at_k").mean())
            .sort("teacher", "variant"))


RECHECK = re.compile(r"\n\s*(?:Wait[,.!]|But wait|Hmm,? wait|Let me (?:double[- ]check|re-?check|verify)|"
                     r"Actually,? let me|Alternatively,)", re.IGNORECASE)
COMMITTED = re.compile(r"(?:answer\s*(?:is|:)|\\boxed\{)", re.IGNORECASE)


# "The answer is (B).", "**Answer:** (B)", "So the final answer is 4"; or an option alone: "(C) grapes"
ANSWER_LINE = re.compile(r"(?i:^[\W_]*(?:so,?\s+)?(?:the\s+)?(?:final\s+|correct\s+)?answer\b)|"
                         r"^[\s*]*\(?[A-Z]\)\s*(?:\S+\s*){0,3}$")


def finished(s: dict) -> bool:
    """A sample (joined with its verdict) that ran to its end and committed to an answer (its verdict's
    `found_by` is not `none`: the grader found a commitment, not a mention)."""
    return s.get("finish_reason") != "length" and s.get("found_by") not in (None, "none")


def answer_lines_only(text: str) -> bool:
    """Whether a text states its answer and nothing else: every line an answer statement
    ("The answer is (B).", "(C) grapes"), under 5 other words in all."""
    rest = [ln for ln in text.splitlines() if ln.strip() and not ANSWER_LINE.search(ln.strip())]
    return sum(len(ln.split()) for ln in rest) < 5


def chars(s: dict) -> int:
    return len(s["content"]) + len(s["reasoning"] or "")


def tokens_of(s: dict) -> int:
    """Completion tokens; for imported traces without counts, an estimate of 4 characters a token."""
    return s["completion_tokens"] if s["completion_tokens"] is not None else -(-chars(s) // 4)


def by_length(s: dict) -> tuple:
    return tokens_of(s), chars(s), s["sample_index"]


def preference(s: dict) -> tuple:
    """Most complete first (a solution beside the answer line, then a separate chain of thought), then shortest."""
    return answer_lines_only(s["content"]), not (s["reasoning"] or "").strip(), *by_length(s)


def distinct_correct(group: list[dict]) -> list[dict]:
    """Correct samples in order of preference, identical (reasoning, content) pairs kept once."""
    seen, out = set(), []
    for s in sorted((s for s in group if s["correct"]), key=preference):
        key = (" ".join((s["reasoning"] or "").split()), " ".join(s["content"].split()))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def shortest_correct(group: list[dict], max_tokens: int | None = None) -> list[dict]:
    return distinct_correct(group)[:1]


def all_correct(group: list[dict], max_tokens: int | None = None) -> list[dict]:
    return distinct_correct(group)


def length_capped(group: list[dict], max_tokens: int | None = None) -> list[dict]:
    return [s for s in distinct_correct(group) if max_tokens is None or tokens_of(s) <= max_tokens][:1]


def truncate_reflection(text: str) -> str:
    """`text` up to the end of the line of its first committed answer, if re-checks follow it."""
    m = COMMITTED.search(text)
    if not m:
        return text
    end = text.find("\n", m.end())
    end = len(text) if end < 0 else end
    return text[:end].rstrip() if RECHECK.search(text, end) else text


def reflection_truncated(group: list[dict], max_tokens: int | None = None) -> list[dict]:
    """The shortest correct trace; its reasoning cut after the first committed answer when
    re-checks follow (the final answer line in `content` is kept as is)."""
    picks = distinct_correct(group)[:1]
    return [{**s, "reasoning": truncate_reflection(s["reasoning"]) if s["reasoning"] else None,
             "content": s["content"] if s["reasoning"] else truncate_reflection(s["content"])} for s in picks]


POLICIES = {"shortest_correct": shortest_correct, "all_correct": all_correct, "length_capped": length_capped,
            "reflection_truncated": reflection_truncated}


def select_shard(policy: str, samples: pl.DataFrame, verdicts: pl.DataFrame, max_tokens: int | None,
                 finished_only: bool) -> pl.DataFrame:
    """One row per kept trace; a group with none kept gets one row with a null sample_id. pass@k
    counts every sample; only finished ones (with `finished_only`) can be kept."""
    joined = samples.join(verdicts.select("sample_id", "correct", "found_by"), on="sample_id", how="left")
    rows = []
    for (problem_id, teacher, variant), g in joined.group_by("problem_id", "teacher", "variant", maintain_order=True):
        group = g.to_dicts()
        done = [s for s in group if finished(s)] if finished_only else group
        n, c = len(group), sum(1 for s in group if s["correct"])
        base = dict(problem_id=problem_id, teacher=teacher, variant=variant, policy=policy, n_samples=n, n_correct=c,
                    n_unfinished=len(group) - len(done), pass_at_1=pass_at_k(n, c, 1), pass_at_k=pass_at_k(n, c, n))
        picks = POLICIES[policy](done, max_tokens) or [None]
        rows += [dict(base, sample_id=p and p["sample_id"], reasoning=p and p["reasoning"], content=p and p["content"])
                 for p in picks]
    return pl.DataFrame(rows, schema=SCHEMAS["selected"])
