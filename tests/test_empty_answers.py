"""Empty answers (a 200 whose content is null or blank, with no reasoning) are failures: retried,
never cached as samples, and after the attempts an error row with the reason. Both wire formats,
over real HTTP to the local servers, through the engine and the SQLite cache."""

import pytest
from fake_servers import FakeServer
from test_remote_teachers import BACKENDS, api_keys, sample  # noqa: F401  (api_keys: the autouse fixture)


@pytest.mark.parametrize("kind", BACKENDS)
def test_an_empty_answer_is_retried_and_an_always_empty_one_is_an_error_row(tmp_path, kind):
    questions = ["plain", "[empty] once", "[emptyone] one path", "[alwaysempty] never"]
    with FakeServer(kind) as server:
        df, stats, t = sample(kind, server, tmp_path, questions, k=3)
    counts = dict(df.group_by("problem_id").len().iter_rows())
    assert counts == {"p0": 3, "p1": 3, "p2": 3}  # the never-answered problem has no sample
    assert (df["content"].str.strip_chars().str.len_chars() > 0).all()
    errors = t.store.errors()
    assert len(errors) == 3 and all("empty answer" in e for e in errors.values())
    assert stats.failed == 3 and stats.new == 9
    assert not t.store.get_many(list(errors))  # nothing empty was cached as an answer
    assert server.attempts_with("[alwaysempty]") == 1 + 3 * 3  # the k=3 request, then each path's 3 attempts
    assert server.attempts_with("[emptyone]") == 2  # the two good paths kept; only the empty one asked again
