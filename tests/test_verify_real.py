"""What real models write on MathVista-style problems, each case with the verdict MathVista's
official scorer gives and the reason the factory's rules must agree."""

import pytest

from tasks.grade import grade

GEO = {"answer_type": "multiple_choice", "choices": ["5", "6", "8", "10"], "answer_index": 0, "answer": "5",
       "question": "如图，在Rt△ABC中，∠ACB＝90°，D是AB的中点，AB＝10，则CD的长为（）"}
ANGLE = {"answer_type": "multiple_choice", "choices": ["135°", "140°", "145°", "150°"], "answer_index": 2,
         "answer": "145°", "question": "△ABC的两内角平分线OB、OC相交于点O，若∠A＝110°，则∠BOC＝（）"}
LENGTH = {"answer_type": "multiple_choice", "choices": ["6cm", "7cm", "4cm", "5cm"], "answer_index": 0, "answer": "6cm",
          "question": "If CB = 4.0, DB = 7.0, and D is the midpoint of AC, then the length of AC is ()"}
FEWER = {"answer_type": "multiple_choice", "choices": ["Yes", "No"], "answer_index": 0, "answer": "Yes",
         "question": "Are there fewer metallic fighters than rubber objects?"}
GREATER = {"answer_type": "multiple_choice", "choices": ["Yes", "No"], "answer_index": 1, "answer": "No",
           "question": "Is the number of tiny gray bicycles greater than the number of green things?"}
COUNT = {"answer_type": "numeric", "choices": [], "answer_index": None, "answer": "12", "precision": None}
FLOAT = {"answer_type": "numeric", "choices": [], "answer_index": None, "answer": "1.2", "precision": 1}
FREE = {"answer_type": "free_form", "choices": [], "answer_index": None, "answer": "\\frac{1}{2}"}

CASES = [
    # (response, problem, expected, why)
    ("因为D是AB的中点，所以CD=AB/2=5。\n答案: A", GEO, True, "Chinese marker 答案: with the option letter"),
    ("CD等于斜边的一半，所以答案是A", GEO, True, "所以答案是 + letter, no punctuation"),
    ("所以答案是C", GEO, False, "所以答案是 + a wrong letter"),
    ("CD是斜边AB上的中线，面积为A。", GEO, True, "a closing 为 + letter"),
    ("故选：A", GEO, True, "故选 + letter"),
    ("答案：(C)", ANGLE, True, "full-width colon, letter in parentheses"),
    ("Therefore, the length of CD is A.", GEO, True, "a closing '... is A.' commits to option A"),
    ("Therefore, the length of AC is D.", LENGTH, False, "'... is D.' commits to D, which is wrong"),
    ("So ∠BOC = 145", ANGLE, True, "an option written with its unit (145°) matched by its number"),
    ("The answer is 145 degrees.", ANGLE, True, "the number with the unit spelled out"),
    ("The answer is 140.", ANGLE, False, "another option's number"),
    ("The answer is 6 cm.", LENGTH, True, "'6 cm' is the option '6cm'"),
    ("Counting them, there are fewer metallic fighters than rubber objects.", FEWER, True,
     "yes/no answered by restating the question's claim"),
    ("No, there are not fewer metallic fighters than rubber objects.", FEWER, False, "an explicit no"),
    ("There are 2 metallic fighters and 5 rubber objects, so there are fewer metallic fighters than rubber objects.",
     FEWER, True, "the claim restated in the closing sentence"),
    ("The number of tiny gray bicycles is not greater than the number of green things.", GREATER, True,
     "the claim negated: no"),
    ("The total is 12 apples, which is less than 20.", COUNT, True, "the committed number, not the larger last one"),
    ("3 red and 4 blue make 7, and 5 more make 12 in total, so the count is 12.", COUNT, True, "the last 'is 12'"),
    ("The answer is 12. This is because 12 < 20.", COUNT, True, "the answer clause ends at its full stop"),
    ("The answer is 1.2 m. Check: 1.2 < 2.", FLOAT, True, "a decimal answer followed by a sentence"),
    ("The answer is \\frac{1}{2}. Indeed 1/2 < 1.", FREE, True, "a LaTeX answer followed by a sentence"),
]


@pytest.mark.parametrize("response, problem, expected, why", CASES, ids=[c[3] for c in CASES])
def test_real_output(response, problem, expected, why):
    assert grade(response, problem).correct is expected, why


def test_verify_audit_compares_the_graders_on_the_same_samples(tmp_path):
    """`verify --audit`: every sample graded by the rules, mathruler alone and math-verify alone; the
    disagreements listed."""
    import polars as pl

    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from schemas.tables import SCHEMAS, read_table, write_table
    from students.runner import run_audit

    data = DataDir(tmp_path)
    free = dict(problem_id="f", source="s", source_id="f", split="train", question="Half of one?", choices=[],
                answer="\\frac{1}{2}", answer_index=None, answer_type="free_form", hint="", lecture="", solution="",
                caption=None, image_sha=None, subject="", topic="", category="", grade="", precision=None, aliases=[],
                unit="", context="", skills=[], origin="", image_phash=None)
    mc = {**GEO, **{k: v for k, v in free.items() if k not in GEO}, "problem_id": "m", "source_id": "m"}
    write_table(pl.DataFrame([free, mc], schema=SCHEMAS["problems"]), data.table("problems") / "s" / "s-0.parquet",
                "problems")
    said = {"f1": ("f", "So x = 0.5."), "f2": ("f", "\\boxed{\\frac{2}{4}}"), "m1": ("m", "答案: A")}
    samples = [dict(sample_id=k, problem_id=p, teacher="t", model="m", variant="plain", sample_index=0,
                    request_key=k, prompt="", reasoning=None, content=c, finish_reason="stop", prompt_tokens=1,
                    completion_tokens=1, latency_s=0.0, cost_usd=0.0) for k, (p, c) in said.items()]
    write_table(pl.DataFrame(samples, schema=SCHEMAS["samples"]), data.table("samples") / "t" / "s" / "s-0.parquet",
                "samples")
    result = run_audit(FactoryConfig(data_dir=str(tmp_path)), data)
    audit = read_table(data.table("reports") / "verify-audit" / "audit.parquet", "audit")
    rows = {r["sample_id"]: r for r in audit.iter_rows(named=True)}
    assert result["samples"] == 3 and rows["f1"]["rules"] is True and rows["f2"]["rules"] is True
    assert rows["m1"]["rules"] is True and rows["m1"]["math_verify"] is None  # no opinion on an option letter
    assert rows["f2"]["math_verify"] is True and rows["m1"]["judge"] is None
    text = (data.table("reports") / "verify-audit" / "audit.md").read_text()
    assert "| rules | 3 | 100.0% | 0 |" in text and "## Disagreements" in text
    assert [rows[k]["found_by"] for k in ("f1", "f2", "m1")] == ["closing_sentence", "boxed", "marker"]
    assert "## How the rules found the answers" in text and "| boxed | 1 |" in text
