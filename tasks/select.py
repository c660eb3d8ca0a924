"""select: keep one trace per (problem, teacher, variant) by policy; pass@k per problem."""

from math import comb

import polars as pl

from schemas.tables import SCHEMAS


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k samples correct) from n samples, c correct."""
    if n == 0 or k > n:
        return float("nan")
    return 1.0 - comb(n - c, k) / comb(n, k)


def shortest_correct(group: list[dict]) -> dict | None:
    """The correct sample with the fewest completion tokens (ties: fewer characters, lower index)."""
    correct = [s for s in group if s["correct"]]
    key = lambda s: (s["completion_tokens"], len(s["content"]) + len(s["reasoning"] or ""), s["sample_index"])  # noqa: E731
    return min(correct, key=key) if correct else None


POLICIES = {"shortest_correct": shortest_correct}


def select_shard(policy: str, samples: pl.DataFrame, verdicts: pl.DataFrame) -> pl.DataFrame:
    joined = samples.join(verdicts.select("sample_id", "correct"), on="sample_id", how="left")
    rows = []
    for (problem_id, teacher, variant), g in joined.group_by("problem_id", "teacher", "variant", maintain_order=True):
        group = g.to_dicts()
        n, c = len(group), sum(1 for s in group if s["correct"])
        pick = POLICIES[policy](group)
        rows.append(dict(
            problem_id=problem_id, teacher=teacher, variant=variant, policy=policy,
            sample_id=pick and pick["sample_id"], reasoning=pick and pick["reasoning"],
            content=pick and pick["content"], n_samples=n, n_correct=c,
            pass_at_1=pass_at_k(n, c, 1), pass_at_k=pass_at_k(n, c, n),
        ))
    return pl.DataFrame(rows, schema=SCHEMAS["selected"])
