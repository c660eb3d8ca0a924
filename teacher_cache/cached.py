"""`CachedTeacher`: wraps any teacher so each (request, sample index) is asked for once.

Raising k from 4 to 8 asks for 4 more samples per problem; a re-run asks for nothing. A local
teacher is asked in batches; a remote one through its `Asker` (the request engine or a batch API,
built by whoever opens the backend), and each answer is committed to the cache the moment it
arrives, so a crash loses only the requests in flight.
"""

import contextlib
import sqlite3
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

from schemas.atomic import owner, owner_alive
from schemas.config import ModelPrice
from schemas.errors import INTERRUPT, interrupted
from schemas.progress import Progress
from teacher_cache import unstored
from teacher_cache.prices import cost_usd
from teacher_cache.store import CacheStore
from teacher_cache.types import Asker, Completion, Request, Teacher

OWNER = owner()  # who holds a claim: this process
LEASE_S = 30.0  # a claim lives this long unless renewed (every LEASE_S / 3 while its request is asked)
POLL_S = 0.5  # how often a process waiting on another's claims looks for their answers


@dataclass
class CacheStats:
    hits: int = 0
    new: int = 0
    failed: int = 0
    tokens_in: int = 0  # of the new requests: what this call paid for
    tokens_out: int = 0
    cost_usd: float = 0.0
    errors: Counter = field(default_factory=Counter)  # why requests failed: error -> requests

    def __add__(self, other: "CacheStats") -> "CacheStats":
        return CacheStats(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)),
                          errors=self.errors + other.errors)

    def common_errors(self, n: int = 3) -> str:
        """The most common failures, for a log line or an error message."""
        return "; ".join(f"{count} x {error[:300]}" for error, count in self.errors.most_common(n))

    def astuple(self) -> tuple:
        return self.hits, self.new, self.failed, self.tokens_in, self.tokens_out, self.cost_usd

    def add(self, completions: list[Completion], price: ModelPrice | None) -> None:
        for c in completions:
            self.new += 1
            self.tokens_in += c.prompt_tokens
            self.tokens_out += c.completion_tokens
            self.cost_usd += cost_usd(price, c.prompt_tokens, c.completion_tokens) or 0.0


class Writes:
    """The cache writes of one ask (each under `lock`): the first that fails stops the asker and is kept
    in `failure`; later ones are not tried, and the answers they held wait in `unsaved`."""

    def __init__(self, asker):
        self.asker, self.lock, self.unsaved, self.failure = asker, threading.Lock(), [], []

    def stored(self, write) -> bool:
        """Runs a cache write; False: not written (this one failed, or an earlier one did)."""
        if self.failure:
            return False
        try:
            write()
            return True
        except Exception as e:
            if not unstored.is_write_failure(e):
                raise
            self.failure.append(e)
            self.asker.stop(e)
            return False


class CachedTeacher:
    def __init__(self, teacher: Teacher | Asker, store: CacheStore, price: ModelPrice | None = None):
        """`teacher`: a local `Teacher` (asked in batches) or an `Asker` (a remote backend behind the
        request engine or a batch API; with a batch API, `price` is the batch price)."""
        self.teacher, self.store, self.price = teacher, store, price
        self.remote = isinstance(teacher, Asker)
        self._inflight: dict[tuple[str, int], threading.Event] = {}  # asked by some thread right now
        self._claims = threading.Lock()

    @property
    def identity(self) -> str:
        return self.teacher.identity

    def close(self) -> None:
        self.teacher.close()

    def complete(self, requests: list[Request], desc: str = "sampling") -> tuple[list[Completion | None], CacheStats]:
        """Completions in request order (None where the backend failed), and what it cost. A request
        another thread or process is asking right now is awaited, never asked twice."""
        keys = [(r.key(self.identity), r.sample_index) for r in requests]
        done = self.store.get_many(keys)
        first = {k: i for i, k in reversed(list(enumerate(keys)))}  # identical requests are asked once
        missing = sorted(i for k, i in first.items() if k not in done)
        with self._claims:  # in this process: a request another shard is asking is awaited
            theirs = {keys[i]: self._inflight[keys[i]] for i in missing if keys[i] in self._inflight}
            local = [i for i in missing if keys[i] not in theirs]
            claimed = self.store.claim([keys[i] for i in local], OWNER, LEASE_S, owner_alive)  # across processes
            todo = [i for i in local if keys[i] in claimed]
            elsewhere = [i for i in local if keys[i] not in claimed]
            self._inflight.update({keys[i]: threading.Event() for i in todo})
        stats = CacheStats(hits=len(first) - len(todo))
        try:
            with Progress(desc, total=len(first), unit="requests", done=stats.hits, disable=not todo) as bar, \
                    self._lease([keys[i] for i in todo]):
                ask = self._ask_remote if self.remote else self._ask_local
                ask([requests[i] for i in todo], [keys[i] for i in todo], done, stats, bar)
        finally:
            with self._claims:
                for i in todo:
                    self._inflight.pop(keys[i]).set()
            with contextlib.suppress(sqlite3.Error):  # a cache that cannot be written: the claims die with us
                self.store.release([keys[i] for i in todo], OWNER)
        for event in theirs.values():
            event.wait()
        done.update(self.store.get_many(list(theirs)))
        if elsewhere:  # another process holds them: wait for its answers, take over what it gives up
            again, more = self._await_others([requests[i] for i in elsewhere], desc)
            done.update({keys[i]: c for i, c in zip(elsewhere, again, strict=True) if c is not None})
            stats = stats + more
        return [done.get(k) for k in keys], stats

    def _await_others(self, requests: list[Request], desc: str) -> tuple[list[Completion | None], CacheStats]:
        """Waits for another process's answers; a request it failed stays failed (its error is
        recorded; the next run retries it), one whose holder died is taken over."""
        keys = [(r.key(self.identity), r.sample_index) for r in requests]
        stats = CacheStats()
        while True:
            got = self.store.get_many(keys)
            pending = [k for k in keys if k not in got]
            failed = self.store.failed(pending)
            held = self.store.claimed(pending, owner_alive)
            unheld = {k for k in pending if k not in failed and k not in held}
            if unheld:  # its holder died before answering: ours now
                stats = stats + self.complete([r for r, k in zip(requests, keys, strict=True) if k in unheld], desc)[1]
                continue
            if all(k in failed for k in pending):
                errors = Counter({"failed in the other process asking it (its error is in the cache)": len(pending)})
                return [got.get(k) for k in keys], stats + CacheStats(hits=len(got), failed=len(pending), errors=errors)
            time.sleep(POLL_S)

    @contextmanager
    def _lease(self, keys: list[tuple[str, int]]):
        """Renews this process's claims on `keys` while they are being asked."""
        stop = threading.Event()

        def renew():
            while not stop.wait(LEASE_S / 3):
                with contextlib.suppress(sqlite3.Error):  # unwritable: the stage is ending with that error
                    self.store.renew(keys, OWNER, LEASE_S)

        thread = threading.Thread(target=renew, daemon=True)
        if keys:
            thread.start()
        try:
            yield
        finally:
            stop.set()

    def _ask_local(self, requests, keys, done, stats, bar) -> None:
        for batch in local_batches(requests, self.teacher.batch_size):
            if INTERRUPT.is_set():  # Ctrl-C: the batches done are stored; the next run asks the rest
                raise interrupted()
            batch_reqs, batch_keys = [requests[i] for i in batch], [keys[i] for i in batch]
            try:
                answers = self.teacher.complete(batch_reqs)
            except Exception as e:  # noqa: BLE001  the whole batch failed: record it, keep going
                for k in batch_keys:
                    self.store.put_error(self.identity, *k, f"{type(e).__name__}: {e}")
                stats.failed += len(batch)
                stats.errors[f"{type(e).__name__}: {e}"] += len(batch)
            else:
                self._keep(batch_keys, answers, done, stats)
            self._show(bar, len(batch), stats)

    def _ask_remote(self, requests, keys, done, stats, bar) -> None:
        """Through the asker (the request engine, a batch API); each answer stored as it arrives. A
        failed write stops the asker before its next request: what still arrives is kept in memory and
        stored at the end, else in a side file the next run imports. A stopped asker ends the call with
        its reason."""
        key_of = {id(r): k for r, k in zip(requests, keys, strict=True)}
        writes = Writes(self.teacher)

        def on_done(reqs: list[Request], answers: list[Completion]) -> None:
            with writes.lock:
                got = list(zip([key_of[id(r)] for r in reqs], answers, strict=True))
                if not writes.stored(lambda: self.store.put_many(self.identity, [(*k, a) for k, a in got])):
                    writes.unsaved.extend(got)
                done.update(got)
                stats.add(answers, self.price)
                self._show(bar, len(reqs), stats)

        def on_error(reqs: list[Request], error: str) -> None:
            with writes.lock:  # with the cache unwritable, a failure is not recorded: the next run retries it
                writes.stored(lambda: [self.store.put_error(self.identity, *key_of[id(r)], error) for r in reqs])
                stats.failed += len(reqs)
                stats.errors[error] += len(reqs)
                self._show(bar, len(reqs), stats)

        self.teacher.ask(requests, on_done, on_error)
        if writes.failure:
            raise self._unsaved_error(writes.unsaved, writes.failure[0])
        if self.teacher.stopped():
            raise self.teacher.stopped()

    def _unsaved_error(self, unsaved: list, first: Exception) -> unstored.CacheUnwritable:
        """Stores what arrived after the failed write (a second try), else writes a side file; the
        error names the cache, the cause and where the answers are."""
        error = first if isinstance(first, unstored.CacheUnwritable) else unstored.unwritable(self.store.path, first)
        if not unsaved:
            return error
        try:
            self.store.put_many(self.identity, [(*k, a) for k, a in unsaved])
            return unstored.CacheUnwritable(f"{error}; the factory stopped sending requests; the {len(unsaved)} answers "
                                            "received were stored on a second try")
        except Exception as e:  # noqa: BLE001  still failing: a side file keeps them
            if not unstored.is_write_failure(e):
                raise
        side = unstored.save(self.store.path, [(self.identity, *k, a) for k, a in unsaved])
        kept = (f"the {len(unsaved)} answers received but not stored are kept in {side} (the next run imports them)"
                if side else f"{len(unsaved)} answers received could not be kept anywhere")
        return unstored.CacheUnwritable(f"{error}; the factory stopped sending requests; {kept}; free space (or make it "
                                        "writable) and run the command again")

    def _keep(self, keys, answers: list[Completion], done: dict, stats: CacheStats) -> None:
        self.store.put_many(self.identity, [(*k, a) for k, a in zip(keys, answers, strict=True)])
        done.update(zip(keys, answers, strict=True))
        stats.add(answers, self.price)

    def _show(self, bar: Progress, n: int, stats: CacheStats) -> None:
        spent = f"${stats.cost_usd:.4f}" if self.price is not None else "unpriced"
        bar.update(n, cached=stats.hits, new=stats.new, failed=stats.failed,
                   tokens=stats.tokens_in + stats.tokens_out, spent=spent)


def local_batches(requests: list[Request], size: int) -> list[list[int]]:
    """Indices of `requests` in batches of about `size` for a local model: prompts of similar length
    together (less padding), the sample indices of one prompt never split (they share its prefill),
    and batches of even size (no short last batch)."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((r.messages, r.params, r.images), []).append(i)
    ordered = sorted(groups.values(), key=lambda g: sum(len(c) for _, c in requests[g[0]].messages))
    n_batches = -(-len(requests) // max(1, size))
    batches: list[list[int]] = [[] for _ in range(n_batches)]
    seen = 0
    for g in ordered:  # a group goes to the batch its first request falls in, evenly spread
        batches[seen * n_batches // len(requests)].extend(g)
        seen += len(g)
    return [b for b in batches if b]
