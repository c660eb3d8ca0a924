"""The production `openai` and `gemini` backends, unchanged, over real HTTP to local servers
that speak each wire format (tests/fake_servers.py), through the engine and the SQLite cache."""

import hashlib
import io
import time

import polars as pl
import pytest
from fake_servers import FakeServer
from PIL import Image

from schemas.config import EndpointConfig, FactoryConfig, SampleConfig
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, write_table
from students.backends import opened
from tasks.sample import sample_shard
from tasks.teachers import Request, SamplingParams
from tasks.teachers import secrets as secrets_mod
from tasks.teachers.engine import RequestEngine
from tasks.teachers.gemini import GeminiTeacher
from tasks.teachers.openai_compat import OpenAITeacher
from teacher_cache import CachedTeacher, CacheStore

BACKENDS = {"openai": OpenAITeacher, "gemini": GeminiTeacher}
KEY = "sk-test-0123456789abcdefSECRET"


@pytest.fixture(autouse=True)
def api_keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)


def problems(questions: list[str], image_sha: str | None = None) -> pl.DataFrame:
    rows = [dict(problem_id=f"p{i}", source="test", source_id=str(i), split="train", question=q,
                 choices=["red", "blue", "green", "gold"], answer="red", answer_index=0, answer_type="multiple_choice",
                 hint="", lecture="Colours are seen.", solution="", caption=None, image_sha=image_sha, subject="s",
                 topic="t", category="c", grade="g") for i, q in enumerate(questions)]
    return pl.DataFrame(rows, schema=SCHEMAS["problems"])


def teacher(kind: str, server: FakeServer, tmp_path, **endpoint) -> CachedTeacher:
    ep = EndpointConfig(base_urls=[server.url], **{"timeout_s": 1.0, "max_attempts": 3, "backoff_s": 0.05, **endpoint})
    return CachedTeacher(RequestEngine(BACKENDS[kind]("fake-model", ep)), CacheStore(tmp_path / f"{kind}.sqlite"))


def sample(kind, server, tmp_path, questions, k=3, variants=("plain",), **endpoint):
    cfg = SampleConfig(teacher=kind, model="fake-model", k=k, variants=list(variants), max_new_tokens=64)
    t = teacher(kind, server, tmp_path, **endpoint)
    try:
        result = sample_shard(cfg, problems(questions), {}, t)
        df = result.samples
        stats = result.stats
    finally:
        t.close()
    return df, stats, t


@pytest.mark.parametrize("kind,reasoning", [("openai", "reasoning"), ("openai", "reasoning_content"),
                                            ("openai", "think"), ("gemini", "thoughts")])
def test_k_paths_in_one_request_with_reasoning(tmp_path, kind, reasoning):
    with FakeServer(kind, reasoning=reasoning) as server:
        df, stats, _ = sample(kind, server, tmp_path, [f"Which colour? {i}" for i in range(5)], k=3)
    assert server.statuses == {200: 5}  # n=3 per problem: one request each
    assert stats.new == 15 and df.height == 15 and df.group_by("problem_id").len()["len"].to_list() == [3] * 5
    assert df["reasoning"].str.starts_with("Path ").all() and df["content"].str.starts_with("The answer is").all()
    assert not df["content"].str.contains("<think>").any()
    assert sorted(df["sample_index"].to_list()) == sorted([0, 1, 2] * 5)
    assert df["finish_reason"].unique().to_list() == ["stop"]
    # each path is the server's answer for its own index, and the request's usage is shared out exactly
    from fake_servers import answer_for
    assert all(r["content"] == answer_for(r["prompt"], r["sample_index"])[1] for r in df.iter_rows(named=True))
    per_request = df.group_by("problem_id").agg(pl.col("completion_tokens").sum())["completion_tokens"]
    assert per_request.to_list() == [30 if kind == "openai" else 45] * 5


@pytest.mark.parametrize("kind", BACKENDS)
def test_every_problem_ends_with_k_samples_or_a_recorded_error(tmp_path, kind):
    questions = ["plain", "[429] busy", "[500] oops", "[503] down", "[malformed] body", "[hang] forever",
                 "[slow] answer", "[length] long", "[always500] broken"]
    with FakeServer(kind, hang_s=5, retry_after=0.4) as server:
        t0 = time.monotonic()
        df, stats, t = sample(kind, server, tmp_path, questions, k=2)
        elapsed = time.monotonic() - t0
    counts = dict(df.group_by("problem_id").len().iter_rows())
    assert counts == {f"p{i}": 2 for i in range(8)}  # all but [always500]
    errors = t.store.errors()
    assert len(errors) == 2 and all("HTTP 500" in e for e in errors.values())  # its k paths, with the reason
    assert stats.new == 16 and stats.failed == 2
    assert server.repeated_successes() == {}  # nothing that succeeded was asked again
    assert server.attempts_with("[always500]") == 3  # bounded attempts
    assert server.attempts_with("[length]") == 1  # a truncated answer is stored, not retried
    assert df.filter(pl.col("problem_id") == "p7")["finish_reason"].to_list() == ["length"] * 2
    assert server.attempts_with("[hang]") == 2 and elapsed < 5  # timed out once, then answered
    assert elapsed >= 0.4  # the 429's retry-after (0.4 s) was honoured over the 0.05 s backoff


@pytest.mark.parametrize("kind", BACKENDS)
def test_refused_n_falls_back_to_k_seeded_requests_once(tmp_path, kind):
    with FakeServer(kind, accept_n=False) as server:
        df, stats, t = sample(kind, server, tmp_path, [f"q{i}" for i in range(4)], k=3, concurrency=1)
    assert server.statuses[400] == 1  # refused once, remembered for every later problem
    assert server.statuses[200] == 12 and stats.new == 12 and df.height == 12
    assert {b.get("seed", b.get("generationConfig", {}).get("seed")) for b in server.bodies[1:]} == {0, 1, 2}
    assert t.teacher.use_n is False and server.repeated_successes() == {}


def test_ignored_n_gets_the_missing_paths_one_by_one(tmp_path):
    with FakeServer("openai", ignore_n=True) as server:
        df, _, _ = sample("openai", server, tmp_path, ["q0", "q1"], k=3, concurrency=1)
    assert df.height == 6 and server.repeated_successes() == {}
    assert df.group_by("problem_id").agg(pl.col("sample_index").sort())["sample_index"].to_list() == [[0, 1, 2]] * 2


def test_gemini_without_thought_summaries_is_asked_again_without_them(tmp_path):
    with FakeServer("gemini", thoughts_refused=True) as server:
        df, _, t = sample("gemini", server, tmp_path, ["q0", "q1"], k=2, concurrency=1)
    assert df.height == 4 and df["reasoning"].is_null().all()
    assert server.statuses[400] == 1 and "thoughts" in t.teacher.teacher.refused


@pytest.mark.parametrize("kind", BACKENDS)
def test_images_are_sent_inline(tmp_path, kind):
    data = DataDir(tmp_path / "data")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    data.image(sha).parent.mkdir(parents=True)
    data.image(sha).write_bytes(buf.getvalue())
    cfg = SampleConfig(teacher=kind, model="fake-model", k=2, variants=["plain"], images=True)
    with FakeServer(kind) as server:
        t = teacher(kind, server, tmp_path)
        result = sample_shard(cfg, problems(["What colour is the square?"], image_sha=sha), {}, t, image_path=data.image)
        df = result.samples
        t.close()
    assert server.images == [sha] and df.height == 2


def test_replicas_share_the_load(tmp_path):
    with FakeServer("openai") as a, FakeServer("openai") as b:
        ep = EndpointConfig(base_urls=[a.url, b.url], concurrency=2)
        t = CachedTeacher(RequestEngine(OpenAITeacher("m", ep)), CacheStore(tmp_path / "c.sqlite"))
        answers, stats = t.complete([Request((("user", f"q{i} [slow]"),), SamplingParams(0.7, 1.0, 8), 0)
                                     for i in range(8)])
        t.close()
    assert stats.new == 8 and a.statuses[200] >= 2 and b.statuses[200] >= 2
    assert a.statuses[200] + b.statuses[200] == 8


def test_requests_per_minute_limit_spaces_requests(tmp_path):
    with FakeServer("openai") as server:
        t = teacher("openai", server, tmp_path, rpm=120, use_n=False)  # 2 per second
        t.complete([Request((("user", "q"),), SamplingParams(0.7, 1.0, 8), i) for i in range(7)])
        t.close()
    assert server.statuses[200] == 7
    span = server.times[-1] - server.times[0]
    assert span >= 2.0  # 7 requests at 2/s after a burst of 2: about 2.5 s from first to last


def test_api_key_reaches_the_server_and_nothing_else(tmp_path, capfd):
    with FakeServer("openai") as server:
        df, _, t = sample("openai", server, tmp_path, ["q0", "[always500] q1"], k=2)
        write_table(df, tmp_path / "samples.parquet", "samples")
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert KEY.encode() not in (tmp_path / "openai.sqlite").read_bytes()
    assert KEY.encode() not in (tmp_path / "samples.parquet").read_bytes()
    out, err = capfd.readouterr()
    assert KEY not in out + err
    assert secrets_mod.redact(f"Incorrect API key provided: {KEY}") == "Incorrect API key provided: ***"
    assert "sk-" not in secrets_mod.redact("key sk-abcdefghijklmnop was refused")


def test_api_key_from_a_secret_block_loader(tmp_path, monkeypatch):
    monkeypatch.setattr(secrets_mod, "secret_loader", lambda name: {"deepseek": "sk-from-block-123456"}[name])
    with FakeServer("openai") as server:
        sample("openai", server, tmp_path, ["q0"], k=1, api_key_secret="deepseek")
    assert server.headers[0]["Authorization"] == "Bearer sk-from-block-123456"


def test_missing_key_for_a_provider_url_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY")
    t = GeminiTeacher("gemini-2.5-flash", EndpointConfig())
    with pytest.raises(PermissionError, match="set GEMINI_API_KEY"):
        t.client(t.base_urls[0])


def test_costs_come_from_the_price_table(tmp_path):
    cfg = FactoryConfig.model_validate({"sample": {"teacher": "openai", "model": "fake-model", "k": 2,
                                                   "variants": ["plain"]}, "arms": {"arms": ["raw"]},
                                        "prices": {"fake-model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}})
    data = DataDir(tmp_path)
    with FakeServer("openai") as server:
        cfg.sample.endpoint.base_urls = [server.url]
        with opened(cfg.sample, cfg, data) as t:
            result = sample_shard(cfg.sample, problems(["What colour is it? " * 10]), {}, t)
            df = result.samples
            stats = result.stats
    expected = (df["prompt_tokens"].sum() * 1.0 + df["completion_tokens"].sum() * 2.0) / 1e6
    assert expected > 0 and df["cost_usd"].sum() == pytest.approx(expected) and stats.cost_usd == pytest.approx(expected)


def test_a_failing_endpoint_is_counted_by_the_server(tmp_path):
    """The broken endpoint of test_rerun_no_teacher does see (and count) any request sent to it."""
    with FakeServer("openai", fail_all=True) as server:
        _, stats, _ = sample("openai", server, tmp_path, ["q0"], k=1, max_attempts=2)
    assert stats.failed == 1 and server.statuses == {500: 2} and server.attempts_with("q0") == 2
