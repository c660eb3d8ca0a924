"""Reasoning judged by a model behind the request engine and the cache: the production `openai`
backend over real HTTP to the local test server; only answers that can be judged are sent."""

import polars as pl
import pytest
from fake_servers import FakeServer, answer_for

from schemas.config import EndpointConfig, JudgeConfig
from schemas.tables import SCHEMAS
from students.evals import judge_reasoning, judge_verdict
from tasks.teachers.engine import RequestEngine
from tasks.teachers.openai_compat import OpenAITeacher
from teacher_cache import CachedTeacher, CacheStore

PROBLEMS = pl.DataFrame([dict(problem_id=f"p{i}", question=f"How many dots in picture {i}?",
                              solution="" if i == 3 else f"Count them: {i} dots.") for i in range(4)])


def row(i: int, style: str = "cot", decoding: str = "greedy", index: int = 0) -> dict:
    return dict(run="r", student="raw-lora", arm="raw", method="lora", seed=0, problem_id=f"p{i}", split="test",
                prompt_style=style, decoding=decoding, sample_index=index, response=f"I see {i}. The answer is {i}.",
                reasoning=None, extracted=str(i), correct=True, grader="numeric", prompt_tokens=1, generated_tokens=1,
                latency_s=0.1, cost_usd=0.0, reasoning_score=None, reasoning_correct=None, reasoning_judge=None,
                eval_fingerprint="f")


@pytest.mark.parametrize("reply, verdict", [
    ("CORRECT", True), ("correct", True), ("**CORRECT**", True), ("CORRECT. Every step holds.", True),
    ("INCORRECT", False), ("incorrect.", False), ("INCORRECT: step 2 divides by zero.", False),
    ("Not correct.", None),  # read as CORRECT by the old parser
    ("The reasoning is correct.", None), ("Yes, it is.", None), ("No", None), ("I cannot tell", None),
    ("", None), ("asdf qwerty ###", None), ("CORRECTNESS: high", None),
])
def test_judge_reply_is_parsed_strictly(reply, verdict):
    """Only a reply that opens with the word asked for counts; anything else is unparsed (None)."""
    assert judge_verdict(reply) is verdict


def test_judge_sees_only_judgeable_answers_once_and_a_rerun_asks_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    evals = pl.DataFrame([row(0), row(1), row(2), row(3),  # p3 has no gold solution
                          row(0, style="direct"), row(1, decoding="sampled", index=1)], schema=SCHEMAS["evals"])
    cfg = JudgeConfig(model="judge-model", endpoint=EndpointConfig(max_attempts=2, backoff_s=0.05))
    with FakeServer("openai") as server:
        cfg.endpoint.base_urls = [server.url]
        judge = CachedTeacher(RequestEngine(OpenAITeacher.from_config(cfg)), CacheStore(tmp_path / "c.sqlite"))
        out, stats = judge_reasoning(evals, PROBLEMS, cfg, judge)
        sent = dict(server.attempts)
        again, stats2 = judge_reasoning(evals, PROBLEMS, cfg, judge)
        judge.close()
    assert len(sent) == 3 and all(n == 1 for n in sent.values())  # p0, p1, p2 greedy chain-of-thought
    assert stats.new == 3 and (stats2.new, stats2.hits) == (0, 3) and dict(server.attempts) == sent
    for prompt in sent:
        assert "Reference solution: Count them:" in prompt and "CORRECT or INCORRECT" in prompt
    expected = {p: answer_for(p, 0)[1] == "CORRECT" for p in sent}
    judged = out.filter(pl.col("reasoning_judge").is_not_null())
    assert judged.height == 3 and set(judged["reasoning_judge"]) == {"openai/judge-model"}
    by_problem = {f"p{i}": v for p, v in expected.items() for i in range(3) if f"picture {i}?" in p}
    assert dict(zip(judged["problem_id"], judged["reasoning_correct"], strict=True)) == by_problem
    assert out.filter(pl.col("reasoning_judge").is_null()).height == 3
    assert again.equals(out)


def test_verify_judge_extracts_only_where_the_rules_found_no_answer_once_each(tmp_path, monkeypatch):
    """MathVista's scorer asks an LLM to extract answers; here only responses the rules cannot read go
    to the judge (the local OpenAI-compatible server), each once; a re-run asks nothing."""
    import re

    from schemas.config import ExtractorConfig, VerifyConfig
    from tasks.verify import verify_shard

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    problems = pl.DataFrame([dict(problem_id=f"p{i}", question=f"Which colour is shape {i}?", answer_type="multiple_choice",
                                  choices=["red", "blue", "green", "gold"], answer="blue", answer_index=1,
                                  aliases=[], precision=None) for i in range(4)])
    responses = ["The answer is (B).", "Hmm, hard to say without looking again.", "I think it is the second one",
                 "Answer: A"]
    samples = pl.DataFrame([dict(sample_id=f"s{i}", problem_id=f"p{i}", teacher="t", variant="plain", reasoning=None,
                                 content=r) for i, r in enumerate(responses)])
    cfg = VerifyConfig(judge=ExtractorConfig(model="extractor", endpoint=EndpointConfig(max_attempts=2, backoff_s=0.05)))
    with FakeServer("openai") as server:
        cfg.judge.endpoint.base_urls = [server.url]
        judge = CachedTeacher(RequestEngine(OpenAITeacher.from_config(cfg.judge)), CacheStore(tmp_path / "c.sqlite"))
        first = verify_shard(cfg, samples, problems, judge)
        sent = dict(server.attempts)
        again = verify_shard(cfg, samples, problems, judge)
        judge.close()
    assert len(sent) == 2 and all(n == 1 for n in sent.values()) and dict(server.attempts) == sent
    assert all("Hmm, hard to say" in p or "second one" in p for p in sent)
    rows = {r["sample_id"]: r for r in first.iter_rows(named=True)}
    assert rows["s0"]["grader"] == rows["s3"]["grader"] == "choice_index"  # the rules decided these
    for sid, prompt in (("s1", next(p for p in sent if "Hmm" in p)), ("s2", next(p for p in sent if "second" in p))):
        letter = re.search(r"\(([A-D])\)", answer_for(prompt, 0)[1]).group(1)
        assert rows[sid]["grader"] == "judge:openai/extractor" and rows[sid]["extracted"] == letter
        assert rows[sid]["correct"] is (letter == "B")
    assert again.equals(first)
