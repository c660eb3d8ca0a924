"""A long retry wait is logged when it starts (the threshold lowered here so the test takes a
second, not 30), and a retry-after over endpoint.max_wait_s ends the call at once with the quota
error, what had arrived stored and nothing recorded as failed. Over real HTTP, through the cache."""

import logging
import time

import pytest
from fake_servers import FakeServer
from test_remote_teachers import api_keys, teacher  # noqa: F401  (api_keys: the autouse fixture)

from tasks.teachers import Request, SamplingParams
from tasks.teachers import engine as engine_mod


def requests(prompts: list[str]) -> list[Request]:
    params = SamplingParams(temperature=0.7, top_p=1.0, max_new_tokens=32)
    return [Request((("user", p),), params, 0) for p in prompts]


def test_a_long_wait_is_logged_when_it_starts(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(engine_mod, "LONG_WAIT_S", 0.3)
    with FakeServer("openai", retry_after=0.5) as server, caplog.at_level(logging.WARNING, "distillery.engine"):
        t = teacher("openai", server, tmp_path)
        got, stats = t.complete(requests(["[429] busy"]))
        t.close()
    assert got[0] is not None and stats.new == 1
    said = [r.getMessage() for r in caplog.records if r.name == "distillery.engine"]
    assert len(said) == 1 and "before attempt 2" in said[0], said
    assert server.url in said[0]


def test_a_retry_after_over_max_wait_ends_the_call_at_once(tmp_path):
    with FakeServer("openai", retry_after=3600) as server:
        t = teacher("openai", server, tmp_path, max_wait_s=60, concurrency=1)
        start = time.monotonic()
        with pytest.raises(engine_mod.QuotaExhausted, match="quota exhausted at .*retry after"):
            t.complete(requests(["plain one", "[429] spent", "plain two", "plain three"]))
        took = time.monotonic() - start
        t.close()
    assert took < 5
    assert not t.store.errors()  # not a failure of the request: the next run asks it
    assert t.store.count() == sum(server.successes.values()) >= 1  # what arrived is stored
