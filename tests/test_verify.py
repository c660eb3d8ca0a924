"""Answer extraction and grading against hand-judged verdicts, and the verify stage."""

import polars as pl
import pytest

from schemas.config import VerifyConfig
from tasks.grade import grade, to_number
from tasks.verify import verify_shard

MC = {"answer_type": "multiple_choice", "choices": ["the left pan", "the right pan", "neither"], "answer_index": 1,
      "answer": "the right pan"}
NUM = {"answer_type": "numeric", "choices": [], "answer_index": None, "answer": "12"}
FREE = {"answer_type": "free_form", "choices": [], "answer_index": None, "answer": "\\frac{1}{2}"}

CASES = [
    # (response, problem, expected correct, why)
    ("The answer is (B).", MC, True, "the letter the prompt asks for"),
    ("The answer is B", MC, True, "letter without parentheses"),
    ("Answer: B.", MC, True, "Answer: form"),
    ("The answer is (A).", MC, False, "wrong letter"),
    ("The answer is the right pan.", MC, True, "option text instead of its letter"),
    ("So the left pan is lighter. The answer is (B).", MC, True, "the committed answer, not a mention"),
    ("I first thought (A) but then (B)", MC, True, "last option letter when nothing is committed"),
    ("\\boxed{B}", MC, True, "boxed letter"),
    ("\\boxed{A}", MC, False, "boxed wrong letter"),
    ("I cannot tell.", MC, False, "no answer: incorrect, not an error"),
    ("The answer is (D).", MC, False, "a letter beyond the options is no option"),
    ("The answer is 12.", NUM, True, "plain number"),
    ("The answer is 12 cm.", NUM, True, "number with a unit"),
    ("The stick is 12 cm long", NUM, True, "last number when nothing is committed"),
    ("The answer is 12.0", NUM, True, "same value, other form"),
    ("The answer is 13.", NUM, False, "wrong number"),
    ("\\boxed{\\frac{24}{2}}", NUM, True, "LaTeX fraction"),
    ("The answer is 1,200.", {**NUM, "answer": "1200"}, True, "thousands separator"),
    ("The answer is 50%.", {**NUM, "answer": "0.5"}, True, "percent"),
    ("First 3, then 12, so the answer is 12.", NUM, True, "answer phrase beats last number"),
    ("The answer is 12, not 13.", NUM, True, "first number in the committed phrase"),
    ("No idea.", NUM, False, "no number"),
    ("The answer is 0.5", FREE, True, "mathruler: 1/2 == 0.5"),
    ("\\boxed{\\frac{1}{2}}", FREE, True, "exact LaTeX"),
    ("The answer is 1/3.", FREE, False, "different value"),
]


@pytest.mark.parametrize("response,problem,expected,why", CASES)
def test_grade_against_known_verdicts(response, problem, expected, why):
    assert grade(response, problem).correct is expected, why


def test_unjudgeable_gold_gives_none_with_reason():
    v = grade("The answer is 3.", {**NUM, "answer": "many"})
    assert v.correct is None and "not a number" in v.reason


@pytest.mark.parametrize("text,value", [("3/4", 0.75), ("-2.5 kg", -2.5), ("1,000,000", 1e6), ("25 %", 0.25), ("x", None)])
def test_to_number(text, value):
    assert to_number(text) == value


def test_verify_shard_gives_every_sample_a_verdict():
    problems = pl.DataFrame([{"problem_id": "p1", **NUM}, {"problem_id": "p2", **MC}])
    samples = pl.DataFrame({"sample_id": ["s1", "s2", "s3", "s4"], "problem_id": ["p1", "p1", "p2", "gone"],
                            "teacher": ["t"] * 4, "variant": ["plain"] * 4,
                            "reasoning": [None, "long thought... The answer is 12.", None, None],
                            "content": ["The answer is 12.", "", "The answer is (A).", "x"]})
    v = verify_shard(VerifyConfig(), samples, problems)
    assert v["sample_id"].to_list() == ["s1", "s2", "s3", "s4"]
    assert v["correct"].to_list() == [True, True, False, None]
    assert v["reason"][3] == "problem not in problems table"
