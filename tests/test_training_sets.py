"""The report's Training sets section: per arm what the arms stage counted, per hypothesis the problems behind it."""

import polars as pl

from reports.training_sets import render_training_sets, shared_problems, training_set_rows
from schemas.tables import SCHEMAS


def stats() -> list[dict]:
    rows = [dict(arm="raw", built=True, reason=None, coverage="matched", problems=7, examples=7, unmatched_problems=3,
                 answer_only=0, conflicts=None, wrong_attempts=None),
            dict(arm="raw_plus_teacher", built=True, reason=None, coverage="matched", problems=7, examples=7,
                 unmatched_problems=1, answer_only=2, conflicts=3, wrong_attempts=None),
            dict(arm="teacher_cot", built=False, reason="no chain of thought", coverage="matched", problems=0,
                 examples=0, unmatched_problems=0, answer_only=0, conflicts=None, wrong_attempts=None)]
    return pl.DataFrame(rows, schema=SCHEMAS["arm_stats"]).to_dicts()


def test_rows_carry_the_training_tokens_of_the_arms_sft_student():
    metas = {"raw-lora": dict(arm="raw", method="lora", train_tokens=1234, status="trained"),
             "raw-grpo": dict(arm="raw", method="grpo", train_tokens=99, status="trained")}
    rows = {r["arm"]: r for r in training_set_rows(stats(), metas)}
    assert rows["raw"]["train_tokens"] == 1234 and rows["raw_plus_teacher"]["train_tokens"] is None


def test_section_shows_counts_shares_and_the_problems_of_each_hypothesis():
    def table(header, rows):
        return ["|".join(header), *("|".join(str(c) for c in r) for r in rows)]

    lines = render_training_sets({"training_sets": training_set_rows(stats(), {})}, table)
    assert "## Training sets" in lines
    assert "raw_plus_teacher|7|7|n/a|1|2 of 7 (29%)|3 of 7 (43%)||" in lines
    assert "teacher_cot|0|0||||||not built: no chain of thought" in lines
    assert "- H3.2: raw_plus_teacher 7 / raw 7" in lines
    assert [h["hypothesis"] for h in shared_problems(stats())] == ["H3.2"]  # the others' arms are not all here
    cot = stats() + [dict(stats()[0], arm="teacher_answer")]
    assert {h["hypothesis"]: h["treatment_problems"] for h in shared_problems(cot)}["H3.3"] == "not built"
