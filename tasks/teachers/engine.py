"""The request engine: every remote backend's requests go through it, so limits and retries live once.

Per endpoint: at most `concurrency` requests in flight per base URL (the least-loaded replica
gets the next one), requests- and tokens-per-minute limits, a per-request time limit, and
exponential backoff with jitter on `Transient` errors (429, 5xx, timeouts, malformed bodies,
empty answers) that honours the server's retry-after, for a bounded number of attempts.

The engine stops sending (no new request leaves; those in flight get GRACE_S to answer, and their
answers are kept) on the first Ctrl-C / SIGTERM, when the cache cannot store an answer, and when a
server's retry-after is longer than `endpoint.max_wait_s` (an exhausted quota). `stopped()` then
says why, as the error the stage ends with; requests never sent record no error.

The engine runs its own event loop in a daemon thread, so shard tasks running in several
threads share one set of limits. `ask` blocks the caller until its requests are done; each
result is handed to `on_done` as it arrives (the cache commits it there): it is the `Asker` that
`teacher_cache.CachedTeacher` wraps for a remote teacher.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
import time

from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from schemas.errors import INTERRUPT, StageFailed, interrupted
from tasks.teachers import Completion, Refused, RemoteTeacher, Request, Transient
from tasks.teachers.budget import Budget, BudgetReached
from tasks.teachers.secrets import redact
from teacher_cache.types import OnDone, OnError

CHARS_PER_TOKEN = 4  # prompt-size estimate for the tokens-per-minute limit
GRACE_S = 5.0  # once stopped, how long the requests already in flight may take to answer
POLL_S = 0.1  # how often a running batch of requests looks for a stop
LONG_WAIT_S = 30.0  # a retry wait at least this long is logged when it starts
log = logging.getLogger("distillery.engine")


class Stopped(Exception):
    """Not sent: the engine stopped (the stage ends with `RequestEngine.stopped()`)."""


class QuotaExhausted(StageFailed):
    """A server asked to wait longer than endpoint.max_wait_s."""


class RequestEngine:
    def __init__(self, teacher: RemoteTeacher, endpoint=None, budget: Budget | None = None):
        """`endpoint`: the limits and retries to apply (an `EndpointConfig`), the teacher's by default;
        `budget`: the spending cap of new requests (endpoint.budget_usd at the model's price)."""
        endpoint = endpoint or teacher.endpoint
        self.teacher, self.cfg, self.identity, self.budget = teacher, endpoint, teacher.identity, budget
        self.use_n = endpoint.use_n  # set to False once the endpoint refuses or ignores `n`
        self._inflight: dict[str, int] = {}
        self._slots: asyncio.Semaphore | None = None
        self._rpm = smooth_limiter(endpoint.rpm) if endpoint.rpm else None
        self._tpm = AsyncLimiter(endpoint.tpm, 60) if endpoint.tpm else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_lock = threading.Lock()
        self._stop: Exception | None = None

    def ask(self, requests: list[Request], on_done: OnDone, on_error: OnError) -> None:
        """Sends every request (k paths of one prompt together where `n` works); blocks until all end,
        or, once stopped, until those in flight have answered (at most GRACE_S)."""
        future = asyncio.run_coroutine_threadsafe(self._run(requests, on_done, on_error), self._started())
        try:
            future.result()
        except concurrent.futures.CancelledError:  # closed while its requests ran
            raise self.stopped() or RuntimeError("the request engine was closed while requests ran") from None

    def stop(self, error: Exception) -> None:
        """No new request leaves from now on; the stage ends with `error` (the first one given)."""
        if self._stop is None:
            self._stop = error

    def stopped(self) -> Exception | None:
        """Why the engine stopped sending, as the error the stage ends with; None while it sends."""
        return self._stop or (interrupted() if INTERRUPT.is_set() else None)

    def close(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._aclose(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, daemon=True, name="request-engine").start()
                self._loop = loop
        return self._loop

    async def _aclose(self) -> None:
        for t in asyncio.all_tasks():  # a shard still waiting gets an error, not a wait without end
            if t is not asyncio.current_task():
                t.cancel()
        closer = getattr(self.teacher, "aclose", None)
        if closer:
            await closer()

    async def _run(self, requests: list[Request], on_done: OnDone, on_error: OnError) -> None:
        urls = self.teacher.base_urls
        if self._slots is None:  # created on the engine's loop, which it belongs to
            self._slots = asyncio.Semaphore(self.cfg.concurrency * len(urls))
            self._inflight = dict.fromkeys(urls, 0)
        groups: dict[tuple, list[Request]] = {}
        for r in requests:
            groups.setdefault(r.group(), []).append(r)
        groups = {g: sorted(rs, key=lambda r: r.sample_index) for g, rs in groups.items()}
        jobs = list(groups.values()) if self.use_n else [[r] for g in groups.values() for r in g]
        await self._settle([asyncio.ensure_future(self._job(j, on_done, on_error)) for j in jobs])

    async def _settle(self, tasks: list[asyncio.Task]) -> None:
        """Waits for every job; once stopped, only while a request is in flight and for at most GRACE_S,
        then cancels the rest (sleeping in a backoff, or not yet sent). A job's own error is raised."""
        everything = asyncio.gather(*tasks, return_exceptions=True)  # one future to poll, however many jobs
        while not everything.done() and not self.stopped():
            await asyncio.wait({everything}, timeout=POLL_S)
        deadline = time.monotonic() + GRACE_S
        while not everything.done() and any(self._inflight.values()) and time.monotonic() < deadline:
            await asyncio.wait({everything}, timeout=POLL_S)
        for t in tasks:
            t.cancel()  # a finished task ignores it
        await asyncio.wait({everything})
        failed = [t.exception() for t in tasks if not t.cancelled() and t.exception() is not None]
        if failed:
            raise failed[0]

    async def _job(self, reqs: list[Request], on_done: OnDone, on_error: OnError, refused: frozenset = frozenset()):
        try:
            got = await self._with_retries(reqs)
        except Stopped:  # never sent: no error recorded, the next run asks it
            return
        except Transient as e:
            if self._over_quota(e):
                self.stop(self._quota_error(e))
                return
            on_error(reqs, redact(describe(e)))
            return
        except Refused as e:
            if e.feature in refused:  # refused again after dropping it: the backend cannot adapt
                hint = "; set endpoint.use_n: false" if e.feature == "n" else ""
                on_error(reqs, redact(str(e)) + hint)
                return
            if e.feature == "n":
                self.use_n = False
            parts = [[r] for r in reqs] if e.feature == "n" else [reqs]
            await asyncio.gather(*(self._job(p, on_done, on_error, refused | {e.feature}) for p in parts))
            return
        except Exception as e:  # noqa: BLE001  attempts exhausted or not retryable: record, go on
            on_error(reqs, redact(describe(e)))
            return
        kept = [(r, c) for r, c in zip(reqs, got, strict=False) if not empty(c)]
        if kept:
            on_done([r for r, _ in kept], [c for _, c in kept])
        again = [r for r, c in zip(reqs, got, strict=False) if empty(c)] + reqs[len(got):]
        if len(got) < len(reqs):  # the endpoint ignored `n`: ask for the rest one by one
            self.use_n = False
        # an empty path of k, or one `n` left out: asked alone (an empty lone answer is retried in _send_once)
        await asyncio.gather(*(self._job([r], on_done, on_error) for r in again))

    async def _with_retries(self, reqs: list[Request]) -> list[Completion]:
        retry = retry_if_exception(lambda e: isinstance(e, Transient) and not self._over_quota(e))
        retrying = AsyncRetrying(stop=stop_after_attempt(self.cfg.max_attempts), wait=self._wait,
                                 retry=retry, reraise=True)
        async for attempt in retrying:
            with attempt:
                return await self._send_once(reqs)
        raise AssertionError("unreachable")

    async def _send_once(self, reqs: list[Request]) -> list[Completion]:
        self._sending_allowed()
        if self._rpm:
            await self._rpm.acquire()
        if self._tpm:
            await self._tpm.acquire(min(self._tpm.max_rate, estimated_tokens(reqs)))
        async with self._slots:
            self._sending_allowed()  # stopped while this job waited for a slot
            if len(reqs) > 1 and not self.use_n:  # refused while this job waited for a slot
                raise Refused("n", "the endpoint refused n earlier")
            reserved, got = await self._reserve(reqs), None
            url = min(self._inflight, key=self._inflight.get)  # least-loaded replica
            self._inflight[url] += 1
            start = time.perf_counter()
            billed = True  # until it is known: an answer, or a failure the server does not charge for
            try:
                got = await asyncio.wait_for(self.teacher.send(url, reqs), self.cfg.timeout_s)
            except TimeoutError as e:  # the server may have generated it all the same: billed
                error = Transient(f"no response within {self.cfg.timeout_s:g} s", billed=True)
                error.endpoint = url
                raise error from e
            except Exception as e:
                billed = getattr(e, "billed", False)  # an HTTP error or a refused connection is not charged
                with contextlib.suppress(AttributeError):
                    e.endpoint = url  # the failure, when recorded, names the endpoint that gave it
                raise
            finally:  # (cut off in flight, CancelledError: billed)
                self._inflight[url] -= 1
                self._settle_budget(reqs, reserved, got, billed)
        for c in got:
            c.latency_s = time.perf_counter() - start
        if len(reqs) == 1 and got and empty(got[0]):
            error = Transient(f"empty answer (no content, no reasoning; finish_reason {got[0].finish_reason})")
            error.endpoint = url
            raise error
        return got

    def _sending_allowed(self) -> None:
        if self.stopped():
            raise Stopped()

    def _settle_budget(self, reqs: list[Request], reserved: float, got: list[Completion] | None, billed: bool) -> None:
        """The group's reservation settled; a spend past the cap (an estimate fell short) stops the engine."""
        if self.budget is None:
            return
        self.budget.settle(reqs, reserved, got, billed)
        if self.budget.spent > self.budget.cap:
            self.stop(self.budget.over())

    async def _reserve(self, reqs: list[Request]) -> float:
        """The group's most cost reserved under the spending cap. When it does not fit, the groups in flight
        are awaited first (they cost less than reserved); still past the cap, the engine stops (not sent)."""
        if self.budget is None:
            return 0.0
        while True:
            try:
                return self.budget.reserve(reqs)
            except BudgetReached as e:
                if not self.budget.pending:
                    self.stop(e)
                    raise Stopped() from e
            await asyncio.sleep(POLL_S)
            self._sending_allowed()

    def _wait(self, state) -> float:
        """Exponential backoff with jitter (half to all of the cap), never shorter than the server's retry-after."""
        cap = min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2 ** (state.attempt_number - 1))
        wait = random.uniform(cap / 2, cap)
        error = state.outcome.exception()
        retry_after = getattr(error, "retry_after", None)
        wait = max(wait, retry_after) if retry_after else wait
        if wait >= LONG_WAIT_S:
            log.warning("%s: waiting %.0f s before attempt %d (%s)", getattr(error, "endpoint", "the endpoint"),
                        wait, state.attempt_number + 1, redact(str(error))[:200])
        return wait

    def _over_quota(self, e: Transient) -> bool:
        return e.retry_after is not None and e.retry_after > self.cfg.max_wait_s

    def _quota_error(self, e: Transient) -> QuotaExhausted:
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(time.time() + e.retry_after))
        where = getattr(e, "endpoint", None) or ", ".join(self.teacher.base_urls)
        return QuotaExhausted(f"quota exhausted at {where}, retry after {when} (the server asks to wait "
                              f"{e.retry_after:.0f} s, over endpoint.max_wait_s = {self.cfg.max_wait_s:g} s); "
                              "the answers received are stored: run the command again then")


def empty(c: Completion) -> bool:
    """An answer with nothing in it (null or blank content, no reasoning): a failure, never a sample."""
    return not c.content.strip() and not (c.reasoning or "").strip()


def describe(e: Exception) -> str:
    """A failure as recorded: the endpoint, the HTTP status where there is one, the error."""
    status = getattr(e, "status_code", None) or (getattr(e, "code", None) if isinstance(getattr(e, "code", None), int)
                                                 else None)
    where = f"{e.endpoint}: " if getattr(e, "endpoint", None) else ""
    return where + (f"HTTP {status}: " if status and f"HTTP {status}" not in str(e) else "") + f"{type(e).__name__}: {e}"


def estimated_tokens(reqs: list[Request]) -> int:
    """Prompt (once) plus the most output the request may produce: what TPM limits count."""
    prompt = sum(len(c) for _, c in reqs[0].messages) // CHARS_PER_TOKEN
    return prompt + reqs[0].params.max_new_tokens * len(reqs)


def smooth_limiter(per_minute: float) -> AsyncLimiter:
    """A limiter that spreads `per_minute` over the minute: bursts of at most a second's share
    (or one request), rather than the whole minute's allowance at once."""
    burst = max(1.0, per_minute / 60)
    return AsyncLimiter(burst, burst * 60 / per_minute)
