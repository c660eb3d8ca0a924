"""Answer extraction and grading against hand-judged verdicts, and the verify stage."""

import polars as pl
import pytest

from schemas.config import VerifyConfig
from tasks.grade import to_number
from tasks.verify import grade_all, verify_shard

CFG = VerifyConfig()


def grade(response: str, problem: dict):
    """One response through the one grading entry point, as every stage grades."""
    return grade_all([(response, None, problem)], CFG)[0]


MC = {"answer_type": "multiple_choice", "choices": ["the left pan", "the right pan", "neither"], "answer_index": 1,
      "answer": "the right pan"}
ANIMAL = {"answer_type": "multiple_choice", "choices": ["a bird", "a mammal", "a fish"], "answer_index": 1,
          "answer": "a mammal"}
COLOUR = {"answer_type": "multiple_choice", "choices": ["red", "blue", "green", "yellow"], "answer_index": 2,
          "answer": "green"}
NUM = {"answer_type": "numeric", "choices": [], "answer_index": None, "answer": "12"}
PCT = {**NUM, "answer": "25%"}
BIG = {**NUM, "answer": "1200"}
NEG = {**NUM, "answer": "-3.5"}
MV_FLOAT = {**NUM, "answer": "1.45", "precision": 2}  # MathVista: float answer, 2 decimals
MV_ONE = {**NUM, "answer": "2.7", "precision": 1}
FREE = {"answer_type": "free_form", "choices": [], "answer_index": None, "answer": "\\frac{1}{2}"}
SQRT = {**FREE, "answer": "2\\sqrt{2}"}
EXPR = {**FREE, "answer": "x^2+1"}
DAY = {**FREE, "answer": "monday"}
NONE_GOLD = {**FREE, "answer": "None"}
OKVQA = {**FREE, "answer": "dog", "aliases": ["puppy", "dog", "canine"]}  # A-OKVQA direct answers
YES = {**FREE, "answer": "yes"}
UNIT = {**FREE, "answer": "5 cm"}
INTERVAL = {**FREE, "answer": "(1, 3)"}

CASES = [
    # (response, problem, expected correct, why)
    # -- multiple choice: letters in the forms teachers write
    ("The answer is (B).", MC, True, "the letter the prompt asks for"),
    ("The answer is B", MC, True, "letter without parentheses"),
    ("The answer is B.", MC, True, "letter with a full stop"),
    ("Answer: B", MC, True, "Answer: form"),
    ("Answer: (B)", MC, True, "Answer: with parentheses"),
    ("answer: b.", MC, False, "a lower-case b is not committed as an option letter, and 'b' is no option text"),
    ("**Answer: B**", MC, True, "markdown bold around the answer line"),
    ("The answer is **B**.", MC, True, "bold letter"),
    ("The answer is **(B)**", MC, True, "bold letter in parentheses"),
    ("Final answer: B", MC, True, "final answer form"),
    ("The final answer is (B).", MC, True, "final answer is form"),
    ("The correct option is B.", MC, True, "correct option form"),
    ("The correct choice is (B)", MC, True, "correct choice form"),
    ("The answer is [B].", MC, True, "square brackets"),
    ("The answer is B) the right pan", MC, True, "letter with closing parenthesis and its text"),
    ("The answer is B: the right pan.", MC, True, "letter, colon, text"),
    ("The answer is B - the right pan.", MC, True, "letter, dash, text"),
    ("The answer is (A).", MC, False, "wrong letter"),
    ("The answer is (C).", MC, False, "another wrong letter"),
    ("The answer is (D).", MC, False, "a letter beyond the options is no option"),
    ("The answer is (Z).", MC, False, "far beyond the options"),
    ("\\boxed{B}", MC, True, "boxed letter"),
    ("\\boxed{(B)}", MC, True, "boxed letter in parentheses"),
    ("\\boxed{\\text{B}}", MC, True, "boxed \\text letter"),
    ("\\boxed{A}", MC, False, "boxed wrong letter"),
    ("So... \\boxed{the right pan}", MC, True, "boxed option text"),
    ("$\\boxed{B}$", MC, True, "boxed inside math mode"),
    ("Reasoning.\n\nB", MC, True, "a lone letter on the last line"),
    ("Reasoning.\n\n**B**", MC, True, "a bold lone letter on the last line"),
    ("Reasoning.\n\n(B)", MC, True, "a lone parenthesised letter on the last line"),
    ("Reasoning.\n\nA", MC, False, "a wrong lone letter on the last line"),
    ("B. the right pan", MC, True, "option line copied as the answer"),
    # -- option text instead of the letter
    ("The answer is the right pan.", MC, True, "option text instead of its letter"),
    ("The answer is The Right Pan", MC, True, "option text, other case"),
    ("The answer is: the right pan", MC, True, "answer is: then option text"),
    ("The answer is the left pan.", MC, False, "wrong option text"),
    ("The answer is neither.", MC, False, "wrong option text (neither)"),
    ("The answer is a mammal.", ANIMAL, True, "option text starting with the article 'a'"),
    ("The answer is A mammal.", ANIMAL, True, "capital 'A mammal' is option text, not option A"),
    ("The answer is A bird.", ANIMAL, False, "'A bird' is option text of the wrong option"),
    ("The answer is a fish", ANIMAL, False, "wrong option text"),
    ("The answer is (A).", ANIMAL, False, "explicit letter A is the bird"),
    ("The answer is (B).", ANIMAL, True, "explicit letter B is the mammal"),
    ("The answer is B because whales nurse their young.", ANIMAL, True, "bare letter followed by an explanation"),
    ("The answer is A because it has feathers.", ANIMAL, False, "bare letter A with an explanation: the bird"),
    ("It is green.", COLOUR, True, "option text on the last line"),
    ("The answer is green.", COLOUR, True, "option text"),
    ("The answer is blue-green? No: green.", COLOUR, True, "the longest (most specific) option mentioned"),
    ("The answer is (C).", COLOUR, True, "letter C of four options"),
    ("The answer is C", COLOUR, True, "bare letter C"),
    ("The answer is D.", COLOUR, False, "letter D is yellow"),
    ("The answer is red.", COLOUR, False, "wrong colour"),
    # -- several letters: the final committed one
    ("So the left pan is lighter. The answer is (B).", MC, True, "the committed answer, not a mention"),
    ("I first thought (A) but then (B)", MC, False, "letters mentioned, none committed to (was credited before)"),
    ("The answer is (A). Wait, re-checking: the answer is (B).", MC, True, "the last committed answer wins"),
    ("The answer is (B). Hmm, actually the answer is (A).", MC, False, "the last committed answer wins (wrong)"),
    ("Options (A) and (C) are wrong, so the answer is B.", MC, True, "letters mentioned before the committed one"),
    ("Between (A), (B) and (C), I pick (B).", MC, True, "last parenthesised letter"),
    ("Between (A), (B) and (C), I pick (C).", MC, False, "last parenthesised letter (wrong)"),
    ("\\boxed{A} is tempting but \\boxed{B}", MC, True, "last boxed wins"),
    ("The answer is (B).\n\nThe answer is (B).", MC, True, "repeated committed answer"),
    # -- no answer
    ("I cannot tell.", MC, False, "no answer: incorrect, not an error"),
    ("", MC, False, "empty response"),
    ("The answer is", MC, False, "cut off before the answer"),
    ("The answer is unknowable.", MC, False, "committed to no option"),
    ("Let me think step by step about the pans", MC, False, "truncated reasoning, no option"),
    # -- numeric
    ("The answer is 12.", NUM, True, "plain number"),
    ("The answer is 12 cm.", NUM, True, "number with a unit"),
    ("The answer is 12cm", NUM, True, "unit glued to the number"),
    ("The answer is $12$.", NUM, True, "math mode"),
    ("The stick is 12 cm long", NUM, True, "last number when nothing is committed"),
    ("The answer is 12.0", NUM, True, "same value, other form"),
    ("The answer is 12.00001", NUM, True, "within the relative tolerance"),
    ("The answer is 12.01", NUM, False, "outside the tolerance"),
    ("The answer is 13.", NUM, False, "wrong number"),
    ("The answer is -12.", NUM, False, "sign matters"),
    ("\\boxed{12}", NUM, True, "boxed number"),
    ("\\boxed{\\frac{24}{2}}", NUM, True, "LaTeX fraction"),
    ("\\boxed{\\dfrac{24}{2}}", NUM, True, "LaTeX dfrac"),
    ("The answer is 24/2.", NUM, True, "plain fraction"),
    ("The answer is 1.2e1", NUM, True, "scientific notation"),
    ("**Answer:** 12", NUM, True, "bold answer label"),
    ("Answer = 12", NUM, True, "answer = form"),
    ("First 3, then 12, so the answer is 12.", NUM, True, "answer phrase beats last number"),
    ("The answer is 12, not 13.", NUM, True, "first number in the committed phrase"),
    ("The answer is 13, since 12 is too small.", NUM, False, "first number in the committed phrase (wrong)"),
    ("The answer is twelve.", NUM, True, "a committed number word is read (issue 19: 'There are two ...' is 2)"),
    ("No idea.", NUM, False, "no number"),
    ("", NUM, False, "empty response"),
    ("The answer is 1,200.", BIG, True, "thousands separator"),
    ("The answer is 1 200", BIG, True, "thousands written with a space (issue 19: `1 000` was read as 000)"),
    ("The answer is 1200.0", BIG, True, "same value"),
    ("The answer is 12,00", BIG, True, "misplaced separator still reads 1200"),
    ("The answer is 120.", BIG, False, "off by ten"),
    ("The answer is 1.2 \\times 10^3", BIG, False, "x 10^k is not read as a number (reads 1.2)"),
    ("The answer is -3.5.", NEG, True, "negative decimal"),
    ("The answer is −3.5", NEG, True, "unicode minus"),
    ("The answer is -7/2.", NEG, True, "negative fraction"),
    ("The answer is 3.5.", NEG, False, "missing sign"),
    ("The answer is 25%.", PCT, True, "percent both sides"),
    ("The answer is 25.", PCT, True, "percent gold, bare number answer"),
    ("The answer is 0.25.", PCT, True, "percent as a fraction"),
    ("The answer is 25\\%.", PCT, True, "LaTeX percent"),
    ("The answer is 2.5%.", PCT, False, "off by ten"),
    ("The answer is 50%.", {**NUM, "answer": "0.5"}, True, "percent answer, fractional gold"),
    ("The answer is 50.", {**NUM, "answer": "0.5"}, False, "no percent sign on either side: 50 is not 0.5"),
    # -- MathVista precision
    ("The answer is 1.45.", MV_FLOAT, True, "exact to 2 decimals"),
    ("The answer is 1.449.", MV_FLOAT, True, "rounds to 1.45"),
    ("The answer is 1.4512", MV_FLOAT, True, "rounds to 1.45"),
    ("The answer is 1.46.", MV_FLOAT, False, "differs at the declared precision"),
    ("The answer is 1.4.", MV_FLOAT, False, "too coarse"),
    ("The answer is 2.7", MV_ONE, True, "exact to 1 decimal"),
    ("The answer is 2.72", MV_ONE, True, "rounds to 2.7"),
    ("The answer is 2.76", MV_ONE, False, "rounds to 2.8"),
    ("The answer is 2.65", MV_ONE, True, "on the half: within half a unit of the last place"),
    ("The answer is 3.", {**NUM, "answer": "3"}, True, "MathVista integer"),
    ("The answer is 3.4.", {**NUM, "answer": "3"}, False, "integer gold, non-integer answer"),
    # -- free form: LaTeX and mathruler
    ("The answer is 0.5", FREE, True, "numbers: 1/2 == 0.5"),
    ("\\boxed{\\frac{1}{2}}", FREE, True, "exact LaTeX"),
    ("\\boxed{\\dfrac{1}{2}}", FREE, True, "dfrac reads like frac"),
    ("\\boxed{1/2}", FREE, True, "slash fraction"),
    ("\\boxed{\\frac{2}{4}}", FREE, True, "unreduced fraction"),
    ("The answer is 1/3.", FREE, False, "different value"),
    ("\\boxed{\\frac{1}{3}}", FREE, False, "different fraction"),
    ("\\boxed{2\\sqrt{2}}", SQRT, True, "exact"),
    ("\\boxed{\\sqrt{8}}", SQRT, True, "mathruler: sqrt(8) == 2 sqrt(2)"),
    ("\\boxed{2.8284}", SQRT, False, "a decimal approximation is not equal"),
    ("\\boxed{3\\sqrt{2}}", SQRT, False, "different multiple"),
    ("\\boxed{x^2+1}", EXPR, True, "exact expression"),
    ("\\boxed{1+x^2}", EXPR, True, "mathruler: commuted sum"),
    ("\\boxed{x^2-1}", EXPR, False, "different expression"),
    ("\\boxed{\\left(1, 3\\right)}", INTERVAL, True, "mathruler: \\left( \\right) dropped"),
    ("\\boxed{(1,3)}", INTERVAL, True, "spacing differs"),
    ("\\boxed{[1, 3]}", INTERVAL, False, "closed is not open"),
    ("\\boxed{\\frac{1}{2", FREE, False, "unclosed box: cut off, no answer (no digit run read out of it)"),
    ("\\boxed{}", FREE, False, "empty box"),
    # -- free form: guards against mathruler's false positives
    ("The answer is mon.", DAY, False, "unit stripping would make mon equal monday"),
    ("The answer is Monday.", DAY, True, "case differs"),
    ("The answer is monday", DAY, True, "exact"),
    ("The answer is tuesday.", DAY, False, "different word"),
    ("No boxed answer here", NONE_GOLD, False, "a missing \\boxed{} must not read as 'None'"),
    ("\\boxed{None}", NONE_GOLD, True, "the model really answered None"),
    ("The answer is none.", NONE_GOLD, True, "case differs"),
    ("The answer is 5 cm.", UNIT, True, "exact with unit"),
    ("The answer is 5.", UNIT, True, "number matches, unit omitted"),
    ("The answer is 5 centimeters.", UNIT, True, "number matches, unit spelled out"),
    ("The answer is 6 cm.", UNIT, False, "wrong number"),
    # -- A-OKVQA: any acceptable direct answer
    ("The answer is dog.", OKVQA, True, "the main answer"),
    ("The answer is a puppy.", OKVQA, True, "an alias, article ignored"),
    ("The answer is Canine", OKVQA, True, "an alias, case ignored"),
    ("The answer is cat.", OKVQA, False, "not among the acceptable answers"),
    ("The answer is dogs.", OKVQA, False, "plural is a different string"),
    ("The answer is yes.", YES, True, "yes"),
    ("The answer is Yes!", YES, True, "punctuation ignored"),
    ("The answer is no.", YES, False, "no is not yes"),
    ("The answer is yes and no.", YES, False, "hedged answer"),
    ("I don't know", YES, False, "no answer phrase: nothing to match"),
]
assert len(CASES) >= 150


@pytest.mark.parametrize("response,problem,expected,why", CASES)
def test_grade_against_known_verdicts(response, problem, expected, why):
    assert grade(response, problem).correct is expected, why


def test_unjudgeable_gold_gives_none_with_reason():
    v = grade("The answer is 3.", {**NUM, "answer": "many"})
    assert v.correct is None and "not a number" in v.reason


@pytest.mark.parametrize("text,value", [("3/4", (0.75, False)), ("-2.5 kg", (-2.5, False)), ("1,000,000", (1e6, False)),
                                        ("25 %", (25.0, True)), ("\\frac{3}{4}", (0.75, False)), ("x", None)])
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
    assert v["correct"].to_list() == [True, False, False, None]  # s2: an answer only in the reasoning is tentative
    assert v["reason"][3] == "problem not in problems table"


# -- graders never raise and never hang ------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LATEX_BITS = ["\\frac{", "\\dfrac{", "\\sqrt{", "\\boxed{", "}", "{", "^", "_", "\\left(", "\\right)", "(", ")", "[", "]",
              "x", "y", "\\pi", "\\infty", "1", "2", "9", "0", ".", ",", "/", "-", "+", "*", "=", "%", "\\%", " ",
              "e", "E", "99999999", "The answer is ", "(B)", "A", "\\text{cm}", "$", "\n", "None", "−"]
latex_like = st.lists(st.sampled_from(LATEX_BITS), max_size=60).map("".join) | st.text(max_size=80)
GOLDS = [MC, NUM, PCT, MV_FLOAT, FREE, SQRT, EXPR, DAY, NONE_GOLD, OKVQA, INTERVAL]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response=latex_like, gold=st.sampled_from(GOLDS), answer=latex_like)
def test_graders_never_raise_on_latex_like_input(response, gold, answer):
    """Through grade_all, as verify grades: the parsers run in the pool, each item within its
    limit (sympy can take minutes over a number like 1e99999999; that is a timeout verdict)."""
    items = [(response, None, problem) for problem in (gold, {**gold, "answer": answer})]
    for v in grade_all(items, VerifyConfig(time_limit_s=5.0)):
        assert v.grader != "error", v.reason
        assert v.correct in (True, False, None) and isinstance(v.reason, str)


@settings(max_examples=15, deadline=None)
@given(responses=st.lists(latex_like, min_size=1, max_size=8))
def test_free_form_grading_returns_within_the_time_limit(responses):
    import time

    items = [(r, None, FREE) for r in responses]
    start = time.monotonic()
    verdicts = grade_all(items, VerifyConfig(time_limit_s=5.0))
    assert len(verdicts) == len(items) and all(
        v.grader in ("exact_match", "numeric", "mathruler", "math_verify", "timeout") for v in verdicts)
    assert time.monotonic() - start < 5.0 * len(items) + 10


def test_an_item_past_the_limit_gets_a_timeout_verdict_and_the_rest_go_on():
    from tasks.verify import HEAVY

    HEAVY.close()  # a fresh worker cannot even import sympy in a millisecond
    items = [(f"\\boxed{{\\sqrt{{{i * i}}}}}", None, {**FREE, "answer": str(i)}) for i in range(2, 6)]
    verdicts = grade_all(items, VerifyConfig(time_limit_s=0.001))
    assert len(verdicts) == 4
    assert any(v.grader == "timeout" and "longer than 0.001 s" in v.reason for v in verdicts)
    assert all(v.correct is None if v.grader == "timeout" else v.correct for v in verdicts)


def test_only_what_a_parser_must_decide_reaches_the_worker_pool_and_the_pool_is_kept():
    from tasks.verify import HEAVY

    numeric_like = [(f"The answer is {i}.5", None, {**FREE, "answer": f"{i}.50"}) for i in range(200)]
    HEAVY.close()
    assert all(v.correct and v.grader == "numeric" for v in grade_all(numeric_like, CFG))
    assert HEAVY.pool is None  # decided inline: no worker started
    parsed = grade_all([("\\boxed{\\frac{\\sqrt{4}}{4}}", None, FREE)], CFG)
    pool = HEAVY.pool
    assert parsed[0].correct and parsed[0].grader == "mathruler" and pool is not None
    grade_all([("\\boxed{\\sqrt{4}/4}", None, FREE)], CFG)
    assert HEAVY.pool is pool  # the same workers for the next call
