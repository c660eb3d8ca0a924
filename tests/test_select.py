"""select: shortest correct trace and pass@k, checked against brute-force enumeration."""

from itertools import combinations

import polars as pl
import pytest

from tasks.select import pass_at_k
from tasks.select import select_shard as select_finished


def select_shard(policy, samples, verdicts, max_tokens=None, finished_only=True):
    """select_shard on finished samples unless they say otherwise (finish reason, how the answer was found)."""
    if "finish_reason" not in samples.columns:
        samples = samples.with_columns(finish_reason=pl.lit("stop"))
    if "found_by" not in verdicts.columns:
        verdicts = verdicts.with_columns(found_by=pl.lit("marker"))
    return select_finished(policy, samples, verdicts, max_tokens, finished_only)


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


def group(contents, tokens, correct, reasoning=None):
    n = len(contents)
    samples = pl.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "problem_id": ["p"] * n, "teacher": ["t"] * n,
                            "variant": ["plain"] * n, "sample_index": list(range(n)), "completion_tokens": tokens,
                            "content": contents, "reasoning": reasoning or [None] * n})
    return samples, pl.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "correct": correct})


def test_all_correct_keeps_every_distinct_correct_trace():
    samples, verdicts = group(["Because X. The answer is (B).", "Because  X.\nThe answer is (B).", "Y. The answer is (B).",
                               "Z. The answer is (A)."], [8, 8, 5, 3], [True, True, True, False])
    sel = select_shard("all_correct", samples, verdicts)
    assert sel["sample_id"].to_list() == ["s2", "s0"]  # shortest first; s1 is s0 but for whitespace
    assert sel["n_correct"].to_list() == [3, 3] and sel["pass_at_k"].to_list() == [1.0, 1.0]


def test_length_capped_keeps_nothing_over_the_cap():
    samples, verdicts = group(["a", "b"], [50, 80], [True, True])
    assert select_shard("length_capped", samples, verdicts, max_tokens=60)["sample_id"].to_list() == ["s0"]
    assert select_shard("length_capped", samples, verdicts, max_tokens=40)["sample_id"].to_list() == [None]


def test_reflection_truncated_cuts_re_checks_after_the_first_committed_answer():
    trace = ("2 + 3 = 5, so the answer is 5.\nWait, let me re-check: 2 + 3 = 5.\nBut wait, is it 5? Yes.\n"
             "The answer is 5.")
    samples, verdicts = group(["The answer is 5."], [40], [True], reasoning=[trace])
    row = select_shard("reflection_truncated", samples, verdicts).row(0, named=True)
    assert row["reasoning"] == "2 + 3 = 5, so the answer is 5." and row["content"] == "The answer is 5."
    plain = "First, 5. The answer is 5."  # nothing after the committed answer: kept whole
    samples, verdicts = group([plain], [10], [True])
    assert select_shard("reflection_truncated", samples, verdicts)["content"].item() == plain


def test_traces_without_token_counts_compare_by_length():
    """Imported traces may carry no token counts: the shortest text wins and the cap uses ~4 chars a token."""
    samples, verdicts = group(["a" * 400, "b" * 40, "c" * 120], pl.Series([None, None, None], dtype=pl.Int64),
                              [True, False, True])
    assert select_shard("shortest_correct", samples, verdicts)["sample_id"].to_list() == ["s2"]
    assert select_shard("length_capped", samples, verdicts, max_tokens=29)["sample_id"].to_list() == [None]
    assert select_shard("length_capped", samples, verdicts, max_tokens=30)["sample_id"].to_list() == ["s2"]


def test_only_finished_traces_are_kept_unless_told_otherwise():
    """A truncated trace and one that commits to no answer (a number that merely occurs) are not kept, and counted;
    pass@k still counts every sample."""
    samples = pl.DataFrame({"sample_id": ["cut", "fallback", "long"], "problem_id": ["p"] * 3, "teacher": ["t"] * 3,
                            "variant": ["plain"] * 3, "sample_index": [0, 1, 2], "completion_tokens": [1, 2, 50],
                            "content": ["The answer is", "so 12", "x" * 50], "reasoning": [None] * 3,
                            "finish_reason": ["length", "stop", "stop"]})
    verdicts = pl.DataFrame({"sample_id": ["cut", "fallback", "long"], "correct": [True, True, True],
                             "found_by": ["marker", "none", "marker"]})
    row = select_shard("shortest_correct", samples, verdicts).row(0, named=True)
    assert row["sample_id"] == "long" and row["n_unfinished"] == 2 and row["pass_at_1"] == 1.0
    assert select_shard("shortest_correct", samples, verdicts, finished_only=False)["sample_id"].item() == "cut"
