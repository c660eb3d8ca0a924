"""arms: each training set built from known selections, in trl's conversational form."""

import polars as pl
import pytest

from schemas.tables import SCHEMAS
from tasks.arms import build_arm, explanation, shortest_wrong

T = "local/embedded"
P1 = dict(problem_id="p1", split="train", question="Which pan is heavier?", choices=["left", "right"], answer="right",
          answer_index=1, answer_type="multiple_choice", hint="", lecture="Add the masses.",
          solution="Right is 5 kg, left 3 kg.", caption="A balance.", image_sha="abc")
P2 = {**P1, "problem_id": "p2", "solution": "Only the dataset knows."}
P3 = {**P1, "problem_id": "p3", "split": "test"}
PROBLEMS = pl.DataFrame([P1, P2, P3])
GOOD = "First add.\n\nThe right pan holds 5 kg. The answer is (B)."
SELECTED = pl.DataFrame([
    dict(problem_id="p1", teacher=T, variant="plain", sample_id="s1", reasoning="hidden thoughts", content=GOOD),
    dict(problem_id="p1", teacher=T, variant="lecture", sample_id="s2", reasoning=None, content=GOOD),
    dict(problem_id="p2", teacher=T, variant="plain", sample_id=None, reasoning=None, content=None),
])
WRONG = {"p2": dict(reasoning=None, content="Left looks bigger. The answer is (A).", extracted="A")}


def arm(name):
    return build_arm(name, PROBLEMS, {"p1": "A balance."}, SELECTED, WRONG, T)


def completion(df, pid):
    return df.filter(pl.col("problem_id") == pid)["completion"][0][0]["content"]


def test_dataset_arms_cover_every_train_problem():
    raw, only = arm("raw"), arm("answer_only")
    assert raw["problem_id"].to_list() == ["p1", "p2"] == only["problem_id"].to_list()  # test split excluded
    assert completion(raw, "p1") == "Right is 5 kg, left 3 kg.\nThe answer is (B)."
    assert completion(only, "p2") == "The answer is (B)."
    assert raw.schema == pl.Schema(SCHEMAS["arms"]) and raw["sample_id"].null_count() == 2


def test_teacher_arms_use_only_correct_selections():
    ans, cot = arm("teacher_answer"), arm("teacher_cot")
    assert ans["problem_id"].to_list() == ["p1"] and ans["sample_id"][0] == "s1"
    assert completion(ans, "p1") == GOOD  # separate reasoning: the answer text is the explanation
    assert completion(cot, "p1") == f"<think>\nhidden thoughts\n</think>\n{GOOD}"
    assert completion(arm("raw_plus_teacher"), "p1").startswith("Right is 5 kg")


def test_lecture_arms_put_the_lecture_in_the_prompt():
    lec = arm("teacher_lecture")
    assert lec["sample_id"][0] == "s2" and lec["variant"][0] == "lecture"
    assert "Lecture: Add the masses." in lec["prompt"][0][0]["content"]
    assert "Lecture:" not in arm("raw")["prompt"][0][0]["content"]
    assert completion(lec, "p1") == "The right pan holds 5 kg. The answer is (B)."  # closing paragraph only


def test_mistakes_arm_shows_the_wrong_attempt_and_corrects_it():
    m = arm("mistakes")
    text = completion(m, "p2")
    assert "Left looks bigger" in text and "wrong" in text and text.endswith("The answer is (B).")
    assert text.startswith("Only the dataset knows.")
    assert m.filter(pl.col("problem_id") == "p1")["sample_id"][0] == "s1"  # built from the plain trace, not s2


@pytest.mark.parametrize("content,expected", [
    ("A.\n\nB. The answer is (B).", "B. The answer is (B)."),
    ("One. Two. Three. The answer is 4.", "Three. The answer is 4."),
])
def test_explanation_without_separate_reasoning(content, expected):
    assert explanation(None, content) == expected


def test_shortest_wrong_ignores_unjudgeable_and_lecture_samples():
    samples = pl.DataFrame(dict(sample_id=["a", "b", "c", "d"], problem_id=["p"] * 4, teacher=[T] * 4,
                                variant=["plain", "plain", "lecture", "plain"], sample_index=[0, 1, 0, 2],
                                completion_tokens=[9, 5, 1, 2], content=["x"] * 4, reasoning=[None] * 4))
    verdicts = pl.DataFrame(dict(sample_id=["a", "b", "c", "d"], correct=[False, False, False, None],
                                 extracted=["A", "A", "A", None]))
    assert shortest_wrong(samples, verdicts, T)["p"]["sample_id"] == "b"


def test_all_correct_selections_give_one_example_each():
    """select.policy all_correct keeps several traces per problem: teacher arms take each once,
    dataset arms still give one example per problem."""
    second = dict(problem_id="p1", teacher=T, variant="plain", sample_id="s3", reasoning="other thoughts",
                  content="Five beats three. The answer is (B).")
    selected = pl.concat([SELECTED, pl.DataFrame([second])], how="diagonal_relaxed")
    cot = build_arm("teacher_cot", PROBLEMS, {}, selected, WRONG, T)
    assert sorted(cot["sample_id"].to_list()) == ["s1", "s3"]
    assert build_arm("raw", PROBLEMS, {}, selected, WRONG, T)["problem_id"].to_list() == ["p1", "p2"]


def test_an_arm_the_sampled_variants_cannot_build_is_skipped_with_its_reason(tmp_path):
    """Unticking `lecture` in the UI form skips the lecture-built arm (arms, train, report), it does not fail the run."""
    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from students.stages import run_train
    from tasks.stages import arm_unavailable

    cfg = FactoryConfig(sample={"variants": ["plain"]}, data_dir=str(tmp_path))
    assert arm_unavailable(cfg, "teacher_lecture") == ("built from the teacher's `lecture` samples, and "
                                                       "sample.variants has no `lecture`")
    assert arm_unavailable(cfg, "mistakes") is None and arm_unavailable(cfg, "raw") is None  # plain attempts; dataset
    assert arm_unavailable(cfg.model_copy(update={"arms": cfg.arms.model_copy(update={"teacher": "imported"})}),
                           "teacher_lecture") is None  # an imported teacher's variants are whatever it has
    meta = run_train(cfg, DataDir(tmp_path), "teacher_lecture", "lora")
    assert meta["status"] == "skipped" and "sample.variants has no `lecture`" in meta["reason"]
