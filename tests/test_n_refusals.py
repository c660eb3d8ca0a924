"""Servers refusing `n` in their own words (llama.cpp's "Only one completion choice is allowed",
at times as HTTP 500; vLLM's "n must be 1 when using greedy sampling"): every wording in the table
makes the engine fall back to k seeded requests, once, over real HTTP."""

import pytest
from fake_servers import FakeServer
from test_remote_teachers import api_keys, sample  # noqa: F401  (api_keys: the autouse fixture)

from tasks.teachers.openai_compat import N_REFUSALS, classify_status

SAID = {  # what each server sends, verbatim where known
    "only one completion choice is allowed": [(500, "Only one completion choice is allowed"),
                                              (400, "Only one completion choice is allowed")],
    "n must be 1 when using greedy sampling": [(400, "n must be 1 when using greedy sampling, got 3.")],
    "n must be 1": [(422, "n must be 1")],
    "multiple completions are not supported": [(400, "Multiple completions are not supported")],
    "'n' is not supported": [(400, "Unsupported value: 'n' is not supported with this model.")],
}


def test_every_known_wording_has_a_sample_and_is_a_refusal_of_n():
    assert set(SAID) == set(N_REFUSALS)
    for said in SAID.values():
        for status, message in said:
            e = classify_status(status, message, {})
            assert getattr(e, "feature", None) == "n", (status, message, e)


def test_a_plain_500_is_still_retried():
    assert type(classify_status(500, "internal error", {})).__name__ == "Transient"


@pytest.mark.parametrize("status,message", [s for said in SAID.values() for s in said])
def test_the_engine_falls_back_to_k_requests(tmp_path, status, message):
    with FakeServer("openai", accept_n=False, n_error=(status, message)) as server:
        df, stats, t = sample("openai", server, tmp_path, [f"q{i}" for i in range(3)], k=3, concurrency=1)
    assert server.statuses[status] == 1 and server.statuses[200] == 9  # refused once, remembered
    assert df.height == 9 and stats.failed == 0 and t.teacher.use_n is False
