"""select: shortest correct trace and pass@k, checked against brute-force enumeration."""

from itertools import combinations

import polars as pl
import pytest

from tasks.select import pass_at_k, select_shard


@pytest.mark.parametrize("n,c,k", [(4, 0, 1), (4, 1, 1), (4, 2, 2), (5, 3, 2), (6, 6, 3), (8, 1, 8), (7, 2, 4)])
def test_pass_at_k_matches_enumeration(n, c, k):
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(combinations(outcomes, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_shortest_correct_and_pass_at_k_per_group():
    samples = pl.DataFrame({
        "sample_id": ["a", "b", "c", "d", "e", "f"], "problem_id": ["p1", "p1", "p1", "p2", "p2", "p1"],
        "teacher": ["t"] * 6, "variant": ["plain"] * 5 + ["lecture"], "sample_index": [0, 1, 2, 0, 1, 0],
        "completion_tokens": [30, 10, 20, 5, 6, 1], "content": ["x" * 30, "wrong", "y" * 20, "n", "n", "z"],
        "reasoning": [None] * 6,
    })
    verdicts = pl.DataFrame({"sample_id": list("abcdef"), "correct": [True, False, True, False, None, True]})
    sel = select_shard("shortest_correct", samples, verdicts).sort("problem_id", "variant")
    rows = {(r["problem_id"], r["variant"]): r for r in sel.iter_rows(named=True)}
    assert rows[("p1", "plain")]["sample_id"] == "c"  # shortest among the correct, not the shortest overall
    assert rows[("p1", "plain")]["pass_at_1"] == pytest.approx(2 / 3)
    assert rows[("p2", "plain")]["sample_id"] is None and rows[("p2", "plain")]["pass_at_k"] == 0.0
    assert rows[("p1", "lecture")]["sample_id"] == "f"
