"""evaluate: greedy answers from a real (tiny) student, graded; LoRA and soft-prompt adapters load."""

import polars as pl
import pytest

from schemas.config import EvaluateConfig, TrainConfig, VerifyConfig
from schemas.tables import SCHEMAS
from students.evaluate import Solver, answer, evaluate_student
from students.loading import load_student
from students.model import load_tokenizer
from students.train import train_student

PROBLEMS = pl.DataFrame([dict(problem_id=f"p{i}", split="test", question=f"What is {i} plus 1?", choices=[],
                              answer=str(i + 1), answer_index=None, answer_type="numeric", hint="", lecture="",
                              solution="", caption=None, image_sha=None) for i in range(4)])
ROWS = pl.DataFrame([{"prompt": [{"role": "user", "content": "Say hi"}], "completion": [{"role": "assistant", "content": "hi"}]}] * 4)


def test_greedy_generation_is_deterministic(tiny_model):
    solver = Solver(load_student(tiny_model, None), load_tokenizer(tiny_model))
    a = [g for g, _ in answer(solver, ["Hello", "What is 2+2?"], 6, 2)]
    assert a == [g for g, _ in answer(solver, ["Hello", "What is 2+2?"], 6, 1)]  # batching changes nothing
    assert all(0 < g.new_tokens <= 6 for g in a)


@pytest.mark.parametrize("method", ["lora", "prompt_tuning"])
def test_evaluate_trained_student(tiny_model, tmp_path, method):
    cfg = TrainConfig(model=tiny_model, batch_size=2)
    train_student(cfg, method, "raw", ROWS, tmp_path / method)
    model = load_student(tiny_model, str(tmp_path / method))
    info = dict(run="r", student=f"raw-{method}", arm="raw", method=method, seed=0, eval_fingerprint="f")
    df = evaluate_student(Solver(model, load_tokenizer(tiny_model)), PROBLEMS, {}, ["plain"], info,
                          EvaluateConfig(max_new_tokens=8, batch_size=4), 0, VerifyConfig())
    assert df.schema == pl.Schema(SCHEMAS["evals"]) and df.height == 4
    assert df["correct"].dtype == pl.Boolean and df["correct"].null_count() == 0
    assert set(df["prompt_style"]) == {"cot"} and set(df["decoding"]) == {"greedy"}


def test_direct_prompt_and_sampled_answers_for_pass_at_k(tiny_model):
    solver = Solver(load_student(tiny_model, None), load_tokenizer(tiny_model))
    info = dict(run="r", student="base", arm="base", method="none", seed=None, eval_fingerprint="f")
    cfg = EvaluateConfig(prompts=["cot", "direct"], k=3, max_new_tokens=6, batch_size=4)
    df = evaluate_student(solver, PROBLEMS, {}, ["plain"], info, cfg, 0, VerifyConfig())
    counts = {k: g.height for k, g in df.group_by("prompt_style", "decoding")}
    assert counts == {("cot", "greedy"): 4, ("direct", "greedy"): 4, ("cot", "sampled"): 12}
    sampled = df.filter(pl.col("decoding") == "sampled")
    assert sorted(sampled.group_by("problem_id").agg(pl.col("sample_index").sort())["sample_index"].to_list()) == [
        [0, 1, 2]] * 4
    assert (df["latency_s"] > 0).all() and (df["prompt_tokens"] > 0).all()
    again = evaluate_student(solver, PROBLEMS, {}, ["plain"], info, cfg, 0, VerifyConfig())
    assert again["response"].to_list() == df["response"].to_list()  # sampled answers are seeded


def test_variants_answered_together_give_each_variants_own_rows(tiny_model):
    """All (variant, prompt style) greedy answers of a student go through one pass, each variant's sampled
    ones through their own, seeded alike: the rows are those of each variant evaluated alone (sampled ones
    too), in the variants' order, and asking [lecture, plain] gives plain the same samples."""
    solver = Solver(load_student(tiny_model, None), load_tokenizer(tiny_model))
    info = dict(run="r", student="base", arm="base", method="none", seed=None, eval_fingerprint="f")
    problems = PROBLEMS.with_columns(pl.Series("lecture", [f"Adding one to {i} gives {i + 1}." for i in range(4)]))
    cfg = EvaluateConfig(prompts=["cot", "direct"], k=2, max_new_tokens=6, batch_size=16)
    together = evaluate_student(solver, problems, {}, ["plain", "lecture"], info, cfg, 0, VerifyConfig())
    alone = [evaluate_student(solver, problems, {}, [v], info, cfg, 0, VerifyConfig()) for v in ("plain", "lecture")]
    keys = ["variant", "prompt_style", "decoding", "problem_id", "sample_index"]
    assert together.select(keys).to_dicts() == pl.concat(alone).select(keys).to_dicts()
    greedy = pl.col("decoding") == "greedy"
    assert together["response"].to_list() == pl.concat(alone)["response"].to_list()
    swapped = evaluate_student(solver, problems, {}, ["lecture", "plain"], info, cfg, 0, VerifyConfig())
    plain = pl.col("variant") == "plain"
    assert swapped.filter(plain)["response"].to_list() == together.filter(plain)["response"].to_list()
    assert evaluate_student(solver, problems.head(0), {}, ["plain", "lecture"], info, cfg, 0, VerifyConfig()).height == 0
    assert together.filter(greedy & (pl.col("variant") == "lecture"))["prompt_tokens"].min() > \
        together.filter(greedy & (pl.col("variant") == "plain"))["prompt_tokens"].max()  # the lecture was asked


def test_reasoning_by_rouge_without_a_judge():
    from students.evals import rouge_l, rouge_reasoning

    problems = PROBLEMS.with_columns(pl.Series("solution", ["Add one to 0 to get 1.", "", "x", "y"]))
    ev = pl.DataFrame([dict(run="r", student="s", arm="raw", method="lora", seed=0, problem_id=f"p{i}", split="test",
                            prompt_style=style, decoding="greedy", sample_index=0, response=resp, reasoning=None,
                            extracted=None, correct=True, grader="g", prompt_tokens=1, generated_tokens=1, latency_s=0.1,
                            cost_usd=0.0, reasoning_score=None, reasoning_correct=None, reasoning_judge=None,
                            eval_fingerprint="f")
                       for i, style, resp in [(0, "cot", "Add one to 0 to get 1. The answer is 1."),
                                              (1, "cot", "whatever"), (2, "direct", "x"), (3, "cot", "z")]],
                      schema=SCHEMAS["evals"])
    out = rouge_reasoning(ev, problems, 0.4)
    assert out["reasoning_score"][0] == pytest.approx(rouge_l("Add one to 0 to get 1. The answer is 1.",
                                                              "Add one to 0 to get 1."))
    assert out["reasoning_correct"].to_list() == [True, None, None, False]  # no solution; direct answer; no overlap
    assert out["reasoning_judge"].to_list() == ["rouge-l>=0.4", None, None, "rouge-l>=0.4"]


def test_evaluate_sources_pick_the_scored_problems_and_an_unknown_one_is_named(tmp_path):
    from schemas.config import FactoryConfig
    from schemas.errors import InputError
    from schemas.paths import DataDir
    from students.stages import eval_problems
    from tasks.ingest import ingest

    data = DataDir(tmp_path)
    ingest(FactoryConfig().ingest.model_copy(update={"n_problems": 10}), data)
    everyone = eval_problems(FactoryConfig(), data)
    cfg = FactoryConfig.model_validate({"evaluate": {"sources": ["synthetic"]}})
    assert eval_problems(cfg, data)["problem_id"].to_list() == everyone["problem_id"].to_list() != []
    with pytest.raises(InputError, match=r"\['mathvista'\] have no val/test problems.*sources there: \['synthetic'\]"):
        eval_problems(FactoryConfig.model_validate({"evaluate": {"sources": ["synthetic", "mathvista"]}}), data)


def test_a_reference_whose_server_fails_on_a_fifth_of_requests_is_counted_wrong_there(tmp_path, monkeypatch):
    """The production `openai` backend against the local server, which fails every attempt for 2 of 10
    problems (and truncates one): those answers are wrong in accuracy and in H3.6's pairs, never dropped,
    and the report shows the reference's failure and truncation rates."""
    from fake_servers import FakeServer, answer_for

    from reports.render import render
    from reports.report import ReportInputs, analyse
    from schemas.config import EndpointConfig, ReferenceConfig, ReportConfig
    from students.evals import Answer, eval_frame, reference_answers
    from tasks.prompts import LETTERS, user_message
    from tasks.teachers.engine import RequestEngine
    from tasks.teachers.openai_compat import OpenAITeacher
    from teacher_cache import CachedTeacher, CacheStore

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    marks = {3: " [always500]", 7: " [always500]", 5: " [length]"}
    problems = [dict(problem_id=f"p{i}", split="test", question=f"Which shape is round?{marks.get(i, '')} ({i})",
                     choices=["disc", "cube", "cone", "prism"], answer_type="multiple_choice", answer_index=0,
                     answer="disc", aliases=[], precision=None) for i in range(10)]
    prompts = [user_message(p, None, "plain") for p in problems]
    for p, q in zip(problems, prompts, strict=True):  # gold: the letter the server answers, so only failures miss
        p["answer_index"] = LETTERS.index(answer_for(q, 0)[1][-3])
    ref = ReferenceConfig(name="flaky", teacher="openai", model="ref-model",
                          endpoint=EndpointConfig(max_attempts=2, backoff_s=0.05))
    with FakeServer("openai") as server:
        ref.endpoint.base_urls = [server.url]
        model = CachedTeacher(RequestEngine(OpenAITeacher.from_config(ref)), CacheStore(tmp_path / "c.sqlite"))
        answers, _ = reference_answers(prompts, model, 64)
        model.close()
    info = dict(run="r", seed=None, eval_fingerprint="f", prompt_style="cot", decoding="greedy")
    ref_rows = eval_frame(problems, answers, info | dict(student="reference:flaky", arm="reference",
                                                        method="zero-shot"), 1, VerifyConfig())
    assert ref_rows["grader"].to_list().count("failed") == 2 and ref_rows["finished"].to_list()[5] is False
    assert ref_rows["correct"].to_list() == [i not in marks for i in range(10)]  # never null: counted wrong
    said = [Answer(f"The answer is ({LETTERS[p['answer_index']]}).", 5, 5, 0.1, 0.0, None, True) for p in problems]
    student = eval_frame(problems, said, info | dict(student="raw-lora", arm="raw", method="lora", seed=0), 1,
                         VerifyConfig())
    summary = analyse(ReportInputs(run="r", evals=pl.concat([student, ref_rows]), problems=pl.DataFrame(
        schema=SCHEMAS["problems"])), ReportConfig())
    acc = {s["student"]: (s["accuracy"], s["n"]) for s in summary["students"]}
    assert acc["reference:flaky"] == (pytest.approx(0.7), 10) and acc["raw-lora"] == (1.0, 10)
    h36 = next(h for h in summary["hypotheses"] if h["hypothesis"] == "H3.6")
    assert (h36["n"], h36["only_treatment"], h36["only_control"]) == (10, 3, 0)  # the failures stay in the pairs
    rates = {r["student"]: r for r in summary["answer_outcomes"]}["reference:flaky"]
    assert (rates["failed"], rates["truncated"], rates["unanswered"]) == (pytest.approx(0.2), pytest.approx(0.1), 0.0)
    text = render(summary, {})
    assert "## Answers counted wrong" in text and "| reference:flaky | 10 | 20.0% | 10.0% | 0.0% | 0.0% |" in text
