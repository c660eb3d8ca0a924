"""A grader corpus (what committed and degenerate students write, with the answer each commits to, or
none) graded identically by every route that grades: the entry point itself, the verify stage, the
evaluation rows, `verify --audit` and the GRPO reward."""

import json

import polars as pl
import pytest

from schemas.config import VerifyConfig
from students.evals import Answer, eval_frame
from students.grpo import correctness_reward, grpo_rows
from tasks.audit import audit
from tasks.prompts import user_message
from tasks.verify import grade_all, verify_shard

CFG = VerifyConfig()


def mc(pid: str, question: str, choices: list[str], index: int) -> dict:
    return dict(problem_id=pid, split="test", question=question, answer_type="multiple_choice", choices=choices,
                answer=choices[index], answer_index=index, aliases=[], precision=None)


def free(pid: str, answer: str, kind: str = "free_form", question: str = "Compute it.") -> dict:
    return dict(problem_id=pid, split="test", question=question, answer_type=kind, choices=[], answer=answer,
                answer_index=None, aliases=[], precision=None)


FISH = mc("fish", "Which animal is a fish?", ["cat", "shark", "eagle"], 1)
SQA = mc("sqa", "Which is a compound sentence?", ["The bird sang, and the sun rose.", "The bird sang at dawn."], 0)
MAXIMUM = mc("max", "Is Periwinkle the maximum?", ["Yes", "No"], 1)
TWO = free("two", "2", "numeric", "How many sequences are in the figure?")
ZERO = free("zero", "0", "numeric", "How many bars have values smaller than 0?")
TWELVE = free("twelve", "12", "numeric", "How many apples are there?")
BIG = free("big", "1200", "numeric")
TEN_NINTHS, THIRD, THOUSAND, NINE = free("tn", "\\frac{10}{9}"), free("third", "\\frac{1}{3}"), free("k", "1000"), free("n", "9")
INTERVAL, ROOT, DIGIT = free("iv", "[0,9)"), free("root", "2\\sqrt{2}"), free("digit", "2")

CORPUS = [  # (response, problem, the answer it commits to or None, correct)
    ("A tempting but wrong attempt: “Gills? No: \\boxed{A}.”\nThis attempt is wrong. The answer is (B).", FISH, "B",
     True),  # a quoted \boxed{} is the attempt's, not the response's
    # -- students that commit to an answer
    ("The shark breathes with gills. The answer is (B).", FISH, "B", True),
    ("\\boxed{B}", FISH, "B", True),
    ("Sharks are fish.\n\n(B)", FISH, "B", True),
    ("It is the shark.", FISH, "B", True),
    ("The answer is A. BECAUSE: The bird sang, and the sun rose. is a compound sentence: two simple sentences "
     "joined by and. The other is a simple sentence, so the correct choice is the first one.", SQA, "A", True),
    ('A tempting but wrong attempt: "Eagles fly high. The answer is (C)."\nThis attempt is wrong: it gives (C), '
     "which does not fit the facts above.\nSharks have gills. The answer is (B).", FISH, "B", True),
    ("<think>Maybe the answer is (A). Wait, cats are mammals.</think>\nThe answer is (B).", FISH, "B", True),
    ("The answer is (A). Wait, re-checking: the answer is (B).", FISH, "B", True),
    ("答案: B", FISH, "B", True),
    ("Between (A), (B) and (C), I pick (B).", FISH, "B", True),
    ("Eagles have feathers. Therefore, the answer is (C).", FISH, "C", False),
    ("There are two sequences in the figure.", TWO, "2", True),
    ("There are two bars with values smaller than 0.", ZERO, "2", False),
    ("Periwinkle is not the maximum.", MAXIMUM, "B", True),
    ("So the ratio is $\\frac{10}{9}$.", TEN_NINTHS, "\\frac{10}{9}", True),
    ("$k = \\frac{1}{3}$", THIRD, "\\frac{1}{3}", True),
    ("$\\frac13$", THIRD, "\\frac13", True),
    ("1 000", THOUSAND, "1 000", True),
    ("Answer $$ 9 $$", NINE, "9", True),
    ("[0,9)", INTERVAL, "[0,9)", True),
    ("(0,9)", INTERVAL, "(0,9)", False),
    ("The answer is 12.", TWELVE, "12", True),
    ("The answer is 13.", TWELVE, "13", False),
    ("The total is 12 apples, which is less than 20.", TWELVE, "12", True),
    ("\\boxed{2\\sqrt{2}}", ROOT, "2\\sqrt{2}", True),
    ("The answer is 1,200.", BIG, "1,200", True),
    # -- degenerate students: echoes, negations, numbers in prose, prompt copies, empty answers
    ("Options: (A) cat (B) shark (C) eagle", FISH, None, False),
    ("(A) cat (B) shark (C) eagle", FISH, None, False),
    ("The answer is (A) cat (B) shark (C) eagle", FISH, None, False),
    (user_message(FISH, None, "plain"), FISH, None, False),
    (user_message(FISH, None, "plain", "direct"), FISH, None, False),
    ("The answer is not (A).", FISH, None, False),
    ("The answer is not B.", FISH, None, False),
    ("The answer is (B). No wait, the answer is not (B).", FISH, None, False),
    ("", FISH, None, False),
    ("Let me think step by step about the animals", FISH, None, False),
    ("<think>Maybe the answer is (B). Wait", FISH, None, False),
    ("The answer is (X).", FISH, None, False),
    ("I first thought (A) but then (B)", FISH, None, False),
    ("B is a letter. A is a letter. C is too.", FISH, None, False),
    ("There were 3 boxes and 20 apples in the picture.", TWELVE, None, False),
    ("All the bars have values smaller than 0.", ZERO, None, False),
    ("AZYUK2A", DIGIT, None, False),
    ("we get \\frac{10}{9} maybe", NINE, None, False),
    ("The answer is", TWELVE, None, False),
    (user_message(TWELVE, None, "plain"), TWELVE, None, False),
    ("No idea.", TWELVE, None, False),
    ("(A)(B)(C)", FISH, None, False),
    ("A, B or C.", FISH, None, False),
    ("The answer is (A) or (B).", FISH, None, False),
    ("Options: (A) cat (B) shark (C) eagle\nThe answer is", FISH, None, False),
    ("The answer is not (B), not (A), and not (C).", FISH, None, False),
    ("12 or 13", TWELVE, None, False),
    ("", TWELVE, None, False),
]
assert len(CORPUS) >= 40 and 2 * sum(c[2] is None for c in CORPUS) >= len(CORPUS)  # half or more degenerate


def frames() -> tuple[pl.DataFrame, pl.DataFrame, list[dict]]:
    """(samples, problems, problem per response) for the corpus."""
    problems = list({c[1]["problem_id"]: c[1] for c in CORPUS}.values())
    samples = pl.DataFrame([dict(sample_id=f"s{i}", problem_id=p["problem_id"], teacher="t", variant="plain",
                                 reasoning=None, content=r) for i, (r, p, _, _) in enumerate(CORPUS)])
    return samples, pl.DataFrame(problems, infer_schema_length=None), [c[1] for c in CORPUS]


def via_grade_all() -> list[dict]:
    return [dict(extracted=v.extracted, correct=v.correct, found_by=v.found_by)
            for v in grade_all([(r, None, p) for r, p, _, _ in CORPUS], CFG)]


def via_verify() -> list[dict]:
    samples, problems, _ = frames()
    return verify_shard(CFG, samples, problems).select("extracted", "correct", "found_by").to_dicts()


def via_evaluation() -> list[dict]:
    answers = [Answer(r, 10, 10, 0.1, 0.0, None, True) for r, _, _, _ in CORPUS]
    info = dict(run="r", student="s", arm="raw", method="lora", seed=0, eval_fingerprint="f", prompt_style="cot",
                decoding="greedy")
    return eval_frame([c[1] for c in CORPUS], answers, info, 1, CFG).select("extracted", "correct", "found_by").to_dicts()


def via_audit() -> list[dict]:
    samples, problems, _ = frames()
    return [dict(correct=r["rules"], found_by=r["found_by"]) for r in audit(samples, problems, CFG).iter_rows(named=True)]


def via_grpo_reward() -> list[dict]:
    rows = grpo_rows([[]] * len(CORPUS), [c[1] for c in CORPUS], CFG)
    rewards = correctness_reward([[{"role": "assistant", "content": r}] for r, _, _, _ in CORPUS],
                                 problem=[r["problem"] for r in rows], verify=[r["verify"] for r in rows])
    return [dict(correct=None if x is None else bool(x)) for x in rewards]


ROUTES = [via_grade_all, via_verify, via_evaluation, via_audit, via_grpo_reward]


@pytest.fixture(scope="module")
def reference() -> list[dict]:
    return via_grade_all()


@pytest.mark.parametrize("route", ROUTES, ids=[r.__name__ for r in ROUTES])
def test_every_route_grades_the_corpus_as_expected_and_identically(route, reference):
    got = route()
    assert len(got) == len(CORPUS)
    for (response, _, answer, correct), g, ref in zip(CORPUS, got, reference, strict=True):
        assert g == {k: ref[k] for k in g}, response  # the same verdict as the entry point, on what the route shows
        assert g["correct"] is correct, response
        if "extracted" in g:
            assert g["extracted"] == answer, response
        if "found_by" in g:
            assert (g["found_by"] == "none") is (answer is None), response


def test_found_by_names_how_each_answer_was_found(reference):
    found = {r: v["found_by"] for (r, *_), v in zip(CORPUS, reference, strict=True)}
    assert found["\\boxed{B}"] == "boxed" and found["The answer is 12."] == "marker"
    assert found["It is the shark."] == "option_text" and found["Sharks are fish.\n\n(B)"] == "closing_sentence"
    assert found["Periwinkle is not the maximum."] == "closing_sentence"
    assert set(found.values()) == {"boxed", "marker", "option_text", "closing_sentence", "none"}
    assert json.dumps(found)  # plain strings, as the parquet columns hold them
