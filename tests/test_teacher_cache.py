"""CachedTeacher + CacheStore: each (request, sample index) is asked for once, even across processes."""

import sqlite3
import subprocess
import sys
import textwrap

from tasks.teachers import Completion, Request, SamplingParams, split_think
from teacher_cache import CachedTeacher, CacheStore

PARAMS = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=32)


class EchoTeacher:
    """A backend whose answers reveal what it was asked; it counts every request it serves."""

    identity = "echo/v1"
    batch_size = 3

    def __init__(self, fail_on: set[int] | None = None):
        self.asked: list[tuple[str, int]] = []
        self.fail_on = fail_on or set()

    def complete(self, requests):
        if any(r.sample_index in self.fail_on for r in requests):
            raise RuntimeError("backend down")
        self.asked += [(r.messages[0][1], r.sample_index) for r in requests]
        return [Completion(f"{r.messages[0][1]}#{r.sample_index}", None, "stop", 3, 2, 0.01) for r in requests]


def requests(k: int, questions=("q1", "q2")) -> list[Request]:
    return [Request((("user", q),), PARAMS, i) for q in questions for i in range(k)]


def test_rerun_asks_nothing_and_raising_k_asks_only_for_the_missing(tmp_path):
    store = CacheStore(tmp_path / "c.sqlite")
    first = EchoTeacher()
    out, stats = CachedTeacher(first, store).complete(requests(2))
    assert [c.content for c in out] == ["q1#0", "q1#1", "q2#0", "q2#1"]
    assert (stats.hits, stats.new) == (0, 4) and len(first.asked) == 4

    again = EchoTeacher()
    out, stats = CachedTeacher(again, CacheStore(tmp_path / "c.sqlite")).complete(requests(2))
    assert again.asked == [] and (stats.hits, stats.new) == (4, 0)
    assert [c.content for c in out] == ["q1#0", "q1#1", "q2#0", "q2#1"]

    more = EchoTeacher()
    _, stats = CachedTeacher(more, store).complete(requests(4))
    assert sorted(more.asked) == [("q1", 2), ("q1", 3), ("q2", 2), ("q2", 3)]
    assert (stats.hits, stats.new) == (4, 4)


def test_key_depends_on_teacher_params_and_messages_not_on_index():
    r = Request((("user", "q"),), PARAMS, 0)
    assert r.key("a") == Request((("user", "q"),), PARAMS, 5).key("a")
    assert r.key("a") != r.key("b")
    assert r.key("a") != Request((("user", "q"),), SamplingParams(0.8, 0.9, 32), 0).key("a")
    assert r.key("a") != Request((("user", "q2"),), PARAMS, 0).key("a")


def test_failures_are_recorded_apart_and_retried_next_time(tmp_path):
    store = CacheStore(tmp_path / "c.sqlite")
    out, stats = CachedTeacher(EchoTeacher(fail_on={1}), store).complete(requests(2, ("q1",)))
    assert out[0] is None and out[1] is None and stats.failed == 2  # one batch of 2 failed together
    errors = sqlite3.connect(tmp_path / "c.sqlite").execute("SELECT error FROM errors").fetchall()
    assert len(errors) == 2 and "backend down" in errors[0][0]
    healthy = EchoTeacher()
    out, stats = CachedTeacher(healthy, store).complete(requests(2, ("q1",)))
    assert stats.new == 2 and [c.content for c in out] == ["q1#0", "q1#1"]
    assert sqlite3.connect(tmp_path / "c.sqlite").execute("SELECT COUNT(*) FROM errors").fetchone()[0] == 0


def test_each_batch_is_durable_before_the_next_is_asked(tmp_path):
    """A process killed mid-run keeps every batch that finished before it died."""
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from test_helpers_dying import DyingTeacher
        from teacher_cache import CachedTeacher, CacheStore
        from tasks.teachers import Request, SamplingParams
        reqs = [Request((("user", f"q{{i}}"),), SamplingParams(0.7, 0.9, 8), 0) for i in range(9)]
        CachedTeacher(DyingTeacher(), CacheStore({str(tmp_path / 'c.sqlite')!r})).complete(reqs)
    """)
    (tmp_path / "test_helpers_dying.py").write_text(textwrap.dedent("""
        import os
        from tasks.teachers import Completion
        class DyingTeacher:
            identity, batch_size, calls = "dying", 3, 0
            def complete(self, requests):
                DyingTeacher.calls += 1
                if DyingTeacher.calls == 3:
                    os._exit(9)  # no cleanup, no flush: like SIGKILL
                return [Completion("ok", None, "stop", 1, 1, 0.0) for _ in requests]
    """))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert CacheStore(tmp_path / "c.sqlite").count() == 6  # two batches of 3 survived


def test_split_think():
    assert split_think("<think>a b</think> The answer is 3.") == ("a b", "The answer is 3.")
    assert split_think("no tags") == (None, "no tags")
    assert split_think("<think>never closed") == ("never closed", "")


def test_local_batches_keep_a_prompts_samples_together_and_even():
    from teacher_cache.cached import local_batches

    reqs = [Request((("user", f"{p}" + "q" * (p % 5)),), PARAMS, i) for p in range(25) for i in range(2)]
    batches = local_batches(reqs, 16)
    assert sorted(i for b in batches for i in b) == list(range(50))  # each request once
    for b in batches:
        prompts = {reqs[i].messages for i in b}
        assert all(sum(reqs[i].messages == m for i in b) == 2 for m in prompts)  # both samples in one batch
    assert len(batches) == 4 and max(map(len, batches)) - min(map(len, batches)) <= 2  # 50 / 16 -> 4 of ~13
    lengths = [max(len(reqs[i].messages[0][1]) for i in b) for b in batches]
    assert lengths == sorted(lengths)  # similar lengths batched together


def test_a_claim_held_by_a_dead_process_or_past_its_lease_is_taken_over(tmp_path):
    """A process that died while asking leaves claims behind; the next one asks those requests
    (once), instead of waiting forever or asking what a living holder is still asking."""
    import socket

    from teacher_cache.cached import OWNER, owner_alive

    store = CacheStore(tmp_path / "c.sqlite")
    reqs = requests(1, questions=("dead", "expired", "alive"))
    teacher = EchoTeacher()
    keys = [(r.key(teacher.identity), r.sample_index) for r in reqs]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert store.claim([keys[0]], f"{socket.gethostname()}:{dead.pid}", 60) == {keys[0]}
    assert store.claim([keys[1]], "other-host:1", -1) == {keys[1]}  # its lease is already over
    assert store.claim([keys[2]], "other-host:2", 60) == {keys[2]}
    assert store.claim(keys, OWNER, 30, owner_alive) == {keys[0], keys[1]}  # the living holder keeps its own
    assert store.claimed(keys, owner_alive) == set(keys)
    store.release(keys[:2], OWNER)
    out, stats = CachedTeacher(teacher, store).complete(reqs[:2])
    assert [c.content for c in out] == ["dead#0", "expired#0"] and stats.new == 2
    assert store.claimed(keys[:2], owner_alive) == set()  # answered requests hold no claim
