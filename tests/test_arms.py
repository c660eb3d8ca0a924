"""arms: each training set holds what its name claims, for every teacher kind, on the same problems.

Unit tests build arms from known samples; the end-to-end tests put problems to a local
OpenAI-compatible server (the production backend over real HTTP) that writes its reasoning in
paragraphs with the answer on its own line, in a `reasoning` field or in `<think>` tags, and solves
60% of the problems, then read every row of every arm.
"""

import polars as pl
import pytest
from fake_servers import FakeServer

from schemas.config import FactoryConfig
from schemas.experiment import ARM, ARM_NAMES, HYPOTHESES
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, read_table, write_table
from students.backends import arms_teacher, close_backends
from students.runner import run_shard
from tasks.arms import NO_COT, arm_unavailable, build_arms, commit, run_arms
from tasks.prompts import answer_sentence
from tasks.select import answer_lines_only

T = "local/embedded"
P1 = dict(problem_id="p1", split="train", question="Which pan is heavier?", choices=["left", "right"], answer="right",
          answer_index=1, answer_type="multiple_choice", hint="", lecture="Add the masses.",
          solution="Right is 5 kg, left 3 kg.", caption="A balance.", image_sha="abc")
P2 = {**P1, "problem_id": "p2", "solution": "Only the dataset knows."}
P3 = {**P1, "problem_id": "p3", "split": "test"}
PROBLEMS = pl.DataFrame([P1, P2, P3])
GOOD = "First add the masses: 5 kg against 3 kg.\n\nThe right pan holds more.\nThe answer is (B)."
BAD = "The left pan looks bigger.\nThe answer is (A)."


def s(sid, pid, variant, index, content, correct, reasoning=None, finish="stop", found_by="marker", tokens=9):
    return dict(sample_id=sid, problem_id=pid, teacher=T, variant=variant, sample_index=index, content=content,
                reasoning=reasoning, finish_reason=finish, completion_tokens=tokens, prompt_tokens=1, cost_usd=None,
                correct=correct, extracted={True: "B", False: "A"}.get(correct), found_by=found_by)


ROWS = [s("s1", "p1", "plain", 0, GOOD, True, reasoning="hidden thoughts"),
        s("s2", "p1", "lecture", 0, GOOD, True),
        s("s3", "p2", "plain", 0, BAD, False, tokens=5),
        s("s4", "p2", "plain", 1, "Too long, cut", None, finish="length"),
        s("s5", "p2", "lecture", 0, GOOD, True)]
SAMPLES = pl.DataFrame([{k: r[k] for k in SCHEMAS["samples"] if k in r} for r in ROWS])
VERDICTS = pl.DataFrame([dict(sample_id=r["sample_id"], correct=r["correct"], extracted=r["extracted"],
                              found_by=r["found_by"]) for r in ROWS])
SELECTED = pl.DataFrame([dict(problem_id=r["problem_id"], teacher=T, variant=r["variant"], sample_id=r["sample_id"],
                              reasoning=r["reasoning"], content=r["content"]) for r in ROWS if r["correct"]])


def arms(coverage="all", names=ARM_NAMES, samples=SAMPLES, selected=SELECTED, finished_only=True):
    return build_arms(list(names), PROBLEMS, {"p1": "A balance."}, samples, VERDICTS, selected, T, coverage,
                      finished_only)


def completion(df, pid):
    return df.filter(pl.col("problem_id") == pid)["completion"][0][0]["content"]


def test_dataset_arms_cover_every_train_problem():
    frames, _ = arms()
    raw, only = frames["raw"], frames["answer_only"]
    assert raw["problem_id"].to_list() == ["p1", "p2"] == only["problem_id"].to_list()  # test split excluded
    assert completion(raw, "p1") == "Right is 5 kg, left 3 kg.\nThe answer is (B)."
    assert completion(only, "p2") == "The answer is (B)."
    assert raw.schema == pl.Schema(SCHEMAS["arms"]) and raw["sample_id"].null_count() == 2


def test_teacher_solution_is_the_whole_visible_answer_and_cot_adds_the_reasoning():
    frames, _ = arms()
    ans, cot = frames["teacher_answer"], frames["teacher_cot"]
    assert ans["problem_id"].to_list() == ["p1"] and ans["sample_id"][0] == "s1"
    assert completion(ans, "p1") == GOOD  # every paragraph, not the closing one; the answer line not doubled
    assert completion(cot, "p1") == f"<think>\nhidden thoughts\n</think>\n{GOOD}"


def test_raw_plus_teacher_takes_the_first_finished_solution_whatever_its_verdict():
    frames, stats = arms()
    rpt = frames["raw_plus_teacher"]
    text = completion(rpt, "p2")
    assert text.startswith("Only the dataset knows.") and BAD in text and text.endswith("The answer is (B).")
    assert sorted(rpt["sample_id"]) == ["s1", "s3"]  # s4 is truncated
    assert stats.filter(pl.col("arm") == "raw_plus_teacher")["conflicts"][0] == 1


def test_mistakes_and_its_ablation_differ_by_the_wrong_attempt_alone():
    frames, stats = arms()
    m, ab = frames["mistakes"], frames["mistakes_no_attempt"]
    assert m["problem_id"].to_list() == ab["problem_id"].to_list() == ["p1", "p2"]
    with_attempt = completion(m, "p2")
    assert "The left pan looks bigger" in with_attempt and "This attempt is wrong" in with_attempt
    assert with_attempt.replace(with_attempt.split("\n\n")[1] + "\n\n", "") == completion(ab, "p2")
    assert completion(m, "p1") == completion(ab, "p1")  # no wrong attempt for p1
    assert m["sample_id"].to_list() == ["s2", "s5"] == ab["sample_id"].to_list()  # the lecture-variant solutions
    assert "Lecture: Add the masses." in m["prompt"][0][0]["content"]
    row = stats.filter(pl.col("arm") == "mistakes")
    assert row["wrong_attempts"][0] == 1 and row["examples"][0] == 2


def test_all_arm_keeps_every_finished_sample_unverified_with_its_own_answer():
    frames, stats = arms()
    assert sorted(frames["teacher_all"]["sample_id"]) == ["s1", "s3"]
    assert completion(frames["teacher_all"], "p2") == BAD  # not gold-corrected: the teacher's own (A)
    assert stats.filter(pl.col("arm") == "teacher_all")["conflicts"][0] == 1
    unfinished_too = arms(finished_only=False)[0]["teacher_all"]
    assert sorted(unfinished_too["sample_id"]) == ["s1", "s3"]  # s4 (truncated) committed to no answer: no sentence


@pytest.mark.parametrize("text", ["Five beats three.\nThe answer is (B).", "Five beats three.\n**The answer is (B).**",
                                  "Five beats three.\nthe answer is (B)", "Five beats three.",
                                  "Five beats three.\nThe answer is (B) right",
                                  "Five beats three. The answer is (B)."])  # the teacher's inline closing sentence
def test_the_answer_sentence_ends_every_completion_once(text):
    assert commit(text, "The answer is (B).") == "Five beats three.\nThe answer is (B)."


@pytest.mark.parametrize("line,kept", [("The answer is 45.", True), ("The answer is 4.5", True),
                                       ("The answer is 4 cm.", True), ("The answer is (C) grapes", True)])
def test_a_different_closing_answer_is_kept_before_the_gold_sentence(line, kept):
    """Only the same answer is replaced: "45" is not "4", and a free-form line is never cut to a prefix."""
    assert commit(f"Steps.\n{line}", "The answer is 4.").endswith(f"{line}\nThe answer is 4.") is kept


def test_one_sparse_arm_does_not_empty_the_others_under_matched_coverage():
    frames, stats = arms("matched", names=["raw", "teacher_answer", "teacher_lecture", "answer_only"],
                         selected=SELECTED.filter(pl.col("sample_id") != "s2"))  # lecture solved p2 only, plain p1
    sizes = {a: df.height for a, df in frames.items()}
    assert sizes["raw"] == sizes["answer_only"] == 1 and sizes["teacher_answer"] + sizes["teacher_lecture"] == 1
    gone = stats.filter(~pl.col("built"))
    assert gone.height == 1 and "shares no training problem" in gone["reason"][0]


def test_matched_coverage_puts_every_arm_on_the_same_problems():
    frames, stats = arms("matched")
    built = {a: set(df["problem_id"]) for a, df in frames.items() if df.height}
    assert set(built) == set(ARM_NAMES) and all(v == {"p1"} for v in built.values())
    assert stats.filter(pl.col("arm") == "raw")["unmatched_problems"][0] == 1


def test_a_teacher_without_separate_reasoning_gets_no_cot_arm_and_the_reason():
    plain = SAMPLES.with_columns(reasoning=pl.lit(None, pl.String))
    frames, stats = arms("matched", samples=plain, selected=SELECTED.with_columns(reasoning=pl.lit(None, pl.String)))
    assert frames["teacher_cot"].height == 0 and frames["teacher_answer"].height == 1
    row = stats.filter(pl.col("arm") == "teacher_cot")
    assert not row["built"][0] and row["reason"][0] == NO_COT


def test_an_arm_the_sampled_variants_cannot_build_is_skipped_with_its_reason(tmp_path):
    """Unticking `lecture` in the UI form skips the lecture-built arms (arms, train, report), it does not fail the run."""
    from students.stages import run_train

    cfg = FactoryConfig(sample={"variants": ["plain"]}, data_dir=str(tmp_path))
    why = "built from the teacher's `lecture` samples, and sample.variants has no `lecture`"
    assert arm_unavailable(cfg, "teacher_lecture") == why == arm_unavailable(cfg, "mistakes")
    assert arm_unavailable(cfg, "raw") is None and arm_unavailable(cfg, "teacher_all") is None
    assert arm_unavailable(cfg.model_copy(update={"arms": cfg.arms.model_copy(update={"teacher": "imported"})}),
                           "teacher_lecture") is None  # an imported teacher's variants are whatever it has
    meta = run_train(cfg, DataDir(tmp_path), "teacher_lecture", "lora")
    assert meta["status"] == "skipped" and "sample.variants has no `lecture`" in meta["reason"]


@pytest.mark.parametrize("text,bare", [
    ("The answer is (B).", True), ("(C) grapes\nThe answer is (C).", True), ("**Answer:** (B)", True),
    ("A: \nThe correct answer is (B).", True), ("Left: 7 kg.\nRight: 14 kg.\nRight is heavier.\nThe answer is (B).", False),
    ("To find the answer we add 3 and 4 and get 7.\nThe answer is (A).", False),
])
def test_answer_line_only_completions_are_told_apart_from_solutions(text, bare):
    assert answer_lines_only(text) is bare


def test_every_hypothesis_compares_declared_arms():
    assert all(h.treatment in ARM and h.control in ARM for h in HYPOTHESES if not h.control.startswith("reference"))


# -- end to end: a chat teacher over real HTTP ------------------------------------------------------------------

N = 20
SOLVED = {i for i in range(N) if i % 5 < 3}  # 60% of the problems, without the lecture
SOLVED_LECTURE = {i for i in range(N) if i % 5 in (1, 2, 3)}  # 60% too, with it: not the same problems


def right(i: int, index: int, lecture: bool) -> bool:
    """Whether the chatty teacher's path `index` of problem i is right: on path 1 of a solved problem, and
    on path 0 too for even i."""
    return i in (SOLVED_LECTURE if lecture else SOLVED) and (index == 1 or i % 2 == 0)


class ChattyServer(FakeServer):
    """Answers like a chat model: reasoning paragraphs, then the answer line on its own (`plain`), or the
    reasoning in a `reasoning` field or `<think>` tags; (A) where `right`, else (B)."""

    def openai_choice(self, prompt, index, j, max_tokens):
        i = int(prompt.split("Question: Q", 1)[1].split(":", 1)[0])
        letter = "A" if right(i, index, "Lecture:" in prompt) else "B"
        steps = f"Problem {i}, path {index}: the colour named first is red.\n\nRed is option (A), so I weigh it."
        answer = f"{steps}\n\nThe answer is ({letter})."
        msg = {"role": "assistant", "content": answer}
        if self.reasoning == "think":
            msg["content"] = f"<think>Thinking about {i} on path {index}.</think>\n{answer}"
        elif self.reasoning:
            msg[self.reasoning] = f"Thinking about {i} on path {index}."
        return {"index": j, "message": msg, "finish_reason": "stop"}


def chat_problems() -> pl.DataFrame:
    rows = [dict(problem_id=f"q{i:02d}", source="test", source_id=str(i), split="train", question=f"Q{i}: which colour?",
                 choices=["red", "blue", "green"], answer="red", answer_index=0, answer_type="multiple_choice", hint="",
                 lecture="Colours are seen.", solution=f"Dataset solution {i}: red.", image_sha=None, subject="s",
                 topic="t", category="c", grade="g", aliases=[], skills=[]) for i in range(N)]
    return pl.DataFrame(rows, schema=SCHEMAS["problems"])


def built_arms(tmp_path, reasoning: str, coverage: str) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, pl.DataFrame]:
    data = DataDir(tmp_path / "data")
    write_table(chat_problems(), data.table("problems") / "shard-00000.parquet", "problems")
    with ChattyServer("openai", reasoning=reasoning) as server:
        cfg = FactoryConfig.model_validate({
            "data_dir": str(data.root), "caption": {"captioner": "none"},
            "sample": {"teacher": "openai", "model": "chatty", "k": 2, "variants": ["plain", "lecture"],
                       "endpoint": {"base_urls": [server.url], "max_attempts": 1}},
            "arms": {"coverage": coverage}})
        for shard in data.shards():
            run_shard("sample", cfg, data, shard)
        close_backends()
    for f in data.sample_files():
        run_shard("verify", cfg, data, f)
        run_shard("select", cfg, data, f)
    result = run_arms(cfg, data, arms_teacher(cfg))
    frames = {a: read_table(data.arm(a) / "train.parquet", "arms") for a in result["rows"]}
    return frames, read_table(data.table("arm_stats"), "arm_stats"), read_table(data.table("verdicts"), "verdicts")


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-arms")


@pytest.mark.parametrize("reasoning", ["", "reasoning", "think"])
def test_every_arm_of_a_chat_teacher_holds_what_its_name_claims(tmp_path, reasoning):
    frames, stats, verdicts = built_arms(tmp_path, reasoning, "all")
    gold = {r["problem_id"]: answer_sentence(r) for r in chat_problems().iter_rows(named=True)}
    only = {r["problem_id"]: completion(frames["answer_only"], r["problem_id"]) for r in frames["answer_only"].iter_rows(named=True)}
    for arm, df in frames.items():
        for r in df.iter_rows(named=True):
            text = r["completion"][0]["content"]
            ending = gold[r["problem_id"]] if ARM[arm].ends_with == "gold" else text.splitlines()[-1]
            assert text.endswith(ending) and text.count(ending) == 1, (arm, text)  # said once, at the end
            assert ending.startswith("The answer is (") and text.splitlines()[-1] == ending
    for r in frames["teacher_answer"].iter_rows(named=True):
        text = r["completion"][0]["content"]
        assert text != only[r["problem_id"]] and "the colour named first is red" in text and "Thinking" not in text
    assert set(frames["teacher_answer"]["problem_id"]) == {f"q{i:02d}" for i in SOLVED}
    bare = dict(zip(stats["arm"], stats["answer_only"], strict=True))
    assert bare["teacher_answer"] == 0 and bare["answer_only"] == frames["answer_only"].height
    cot = stats.filter(pl.col("arm") == "teacher_cot")
    if reasoning:
        answers = {r["problem_id"]: completion(frames["teacher_answer"], r["problem_id"])
                   for r in frames["teacher_answer"].iter_rows(named=True)}
        for r in frames["teacher_cot"].iter_rows(named=True):
            text = r["completion"][0]["content"]
            assert text.startswith("<think>\nThinking about") and text != answers[r["problem_id"]]
        assert frames["teacher_cot"]["problem_id"].n_unique() == len(SOLVED)
    else:
        assert frames["teacher_cot"].height == 0 and not cot["built"][0] and cot["reason"][0] == NO_COT
    # brute force: conflicts are raw_plus_teacher examples whose teacher sample was graded wrong
    wrong = set(verdicts.filter(pl.col("correct") == False)["sample_id"])  # noqa: E712
    rpt = frames["raw_plus_teacher"]
    assert stats.filter(pl.col("arm") == "raw_plus_teacher")["conflicts"][0] == sum(i in wrong for i in rpt["sample_id"])
    assert sum(i in wrong for i in rpt["sample_id"]) == sum(not right(i, 0, False) for i in range(N)) > 0
    m = frames["mistakes"]
    assert set(m["problem_id"]) == {f"q{i:02d}" for i in SOLVED_LECTURE}
    assert stats.filter(pl.col("arm") == "mistakes")["wrong_attempts"][0] == m["wrong_sample_id"].is_not_null().sum()
    quoted = sum("This attempt is wrong" in c[0]["content"] for c in m["completion"])
    erred = [i for i in SOLVED_LECTURE if not (right(i, 0, False) and right(i, 1, False))]  # a wrong plain path
    assert quoted == m["wrong_sample_id"].is_not_null().sum() == len(erred) > 0


def test_matched_coverage_with_a_teacher_that_solves_60_percent(tmp_path):
    frames, stats, _ = built_arms(tmp_path, "reasoning", "matched")
    sets = {a: set(df["problem_id"]) for a, df in frames.items()}
    both = {f"q{i:02d}" for i in SOLVED & SOLVED_LECTURE}  # verified with and without the lecture
    assert all(v == both for v in sets.values()), {a: len(v) for a, v in sets.items()}
    for h in HYPOTHESES:
        if h.treatment in sets and h.control in sets:
            assert sets[h.treatment] == sets[h.control], h.id
    assert stats.filter(pl.col("arm") == "raw")["unmatched_problems"][0] == N - len(both)
    assert dict(zip(stats["arm"], stats["problems"], strict=True)) == {a: len(both) for a in sets}
