"""Batch APIs as a way to ask a remote teacher (`sample.batch: true`): about half the price,
answers within the provider's completion window.

OpenAI: one line per (request, sample index) goes into a jsonl file, uploaded (`POST /files`,
purpose batch); a batch is created over it (`POST /batches`) and polled (`GET /batches/{id}`)
until it ends; its output and error files (`GET /files/{id}/content`) give each line's answer
or error. Gemini (Batch Mode, through google-genai): the requests go inline
(`models/{model}:batchGenerateContent`), each with its key in its metadata, and the job is polled
(`batches/{id}`) until its inlined responses are there.

The cache (teacher_cache.store) records which batch each request went into before polling, so a
process that dies while a batch runs resumes polling it and never submits it twice; requests a
batch did not answer (it expired, or failed part-way) are submitted again, alone. `BatchAsker` is
that loop, as the `Asker` that `teacher_cache.CachedTeacher` wraps.
"""

import io
import json
import time
from collections import Counter
from dataclasses import dataclass

import openai

from schemas.errors import INTERRUPT, InputError, interrupted
from tasks.teachers import Completion, Request
from tasks.teachers.openai_compat import OpenAITeacher, completions
from tasks.teachers.secrets import api_key, redact
from teacher_cache.store import CacheStore
from teacher_cache.types import OnDone, OnError

ENDPOINT = "/v1/chat/completions"
DONE = {"completed", "failed", "expired", "cancelled"}
MAX_LINES = 50_000  # the API's limit per batch


@dataclass
class BatchResult:
    """What a finished batch said: answers and errors by custom id, and its final status."""

    status: str
    answers: dict[str, Completion]
    errors: dict[str, str]


def custom_id(key: str, index: int) -> str:
    return f"{key}:{index}"


class OpenAIBatches:
    """Submits, polls and reads OpenAI batches for one `OpenAITeacher` (its model, URL and key)."""

    def __init__(self, teacher: OpenAITeacher, poll_s: float, window: str = "24h"):
        self.teacher, self.poll_s, self.window = teacher, poll_s, window
        url = teacher.base_urls[0]
        key = api_key(teacher.endpoint.api_key_secret, teacher.endpoint.api_key_env or teacher.default_key_env)
        if key is None and url == teacher.default_url:
            raise InputError(f"the batch API needs an API key: set {teacher.default_key_env}")
        self.client = openai.OpenAI(base_url=url, api_key=key or "EMPTY", max_retries=3,
                                    timeout=teacher.endpoint.timeout_s)

    def submit(self, requests: list[Request], keys: list[tuple[str, int]]) -> str:
        """Uploads one line per request and creates the batch; returns its id."""
        lines = [json.dumps({"custom_id": custom_id(*k), "method": "POST", "url": ENDPOINT,
                             "body": self.teacher.body([r])}) for r, k in zip(requests, keys, strict=True)]
        upload = self.client.files.create(file=("distillery-batch.jsonl", io.BytesIO("\n".join(lines).encode())),
                                          purpose="batch")
        batch = self.client.batches.create(input_file_id=upload.id, endpoint=ENDPOINT,
                                           completion_window=self.window,
                                           metadata={"from": "distillery", "identity": self.teacher.identity})
        return batch.id

    def wait(self, batch_id: str, on_poll=None) -> BatchResult:
        """Polls until the batch ends; reads its output and error files."""
        while True:
            batch = self.client.batches.retrieve(batch_id)
            if on_poll:
                on_poll(batch)
            if batch.status in DONE:
                break
            time.sleep(self.poll_s)
        answers, errors = {}, {}
        if batch.output_file_id:
            for line in self._lines(batch.output_file_id):
                cid, response, error = line.get("custom_id"), line.get("response") or {}, line.get("error")
                if error or response.get("status_code", 200) >= 400:
                    errors[cid] = describe_error(response, error)
                    continue
                try:
                    answers[cid] = completions(response.get("body") or {})[0]
                except (ValueError, TypeError, AttributeError) as e:
                    errors[cid] = f"malformed batch answer: {e}"
        if batch.error_file_id:
            for line in self._lines(batch.error_file_id):
                errors.setdefault(line.get("custom_id"), describe_error(line.get("response") or {}, line.get("error")))
        if batch.status == "failed" and not answers and not errors:
            reasons = "; ".join(f"{e.code}: {e.message}" for e in (batch.errors.data if batch.errors else []))
            errors[None] = f"batch {batch_id} failed: {reasons or 'no reason given'}"
        return BatchResult(batch.status, answers, {k: redact(v) for k, v in errors.items()})

    def _lines(self, file_id: str) -> list[dict]:
        text = self.client.files.content(file_id).text
        return [json.loads(line) for line in text.splitlines() if line.strip()]


class GeminiBatches:
    """Gemini Batch Mode with inline requests, for one `GeminiTeacher`."""

    ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
             "JOB_STATE_PARTIALLY_SUCCEEDED"}

    def __init__(self, teacher, poll_s: float):
        from google import genai
        from google.genai import types

        key = api_key(teacher.endpoint.api_key_secret, teacher.endpoint.api_key_env or teacher.default_key_env)
        if key is None:
            raise InputError(f"the batch API needs an API key: set {teacher.default_key_env}")
        self.teacher, self.poll_s = teacher, poll_s
        options = types.HttpOptions(base_url=teacher.base_urls[0], timeout=int(teacher.endpoint.timeout_s * 1000))
        self.client = genai.Client(api_key=key, http_options=options)

    def submit(self, requests: list[Request], keys: list[tuple[str, int]]) -> str:
        from google.genai import types

        from tasks.teachers.gemini import contents

        src = [types.InlinedRequest(contents=contents(r), config=self.teacher.config([r]),
                                    metadata={"key": custom_id(*k)}) for r, k in zip(requests, keys, strict=True)]
        job = self.client.batches.create(model=self.teacher.model, src=src,
                                         config=types.CreateBatchJobConfig(display_name="distillery"))
        return job.name

    def wait(self, batch_id: str, on_poll=None) -> BatchResult:
        from tasks.teachers.gemini import completions as gemini_completions

        while True:
            job = self.client.batches.get(name=batch_id)
            if on_poll:
                on_poll(job)
            state = job.state.name if hasattr(job.state, "name") else str(job.state)
            if state in self.ENDED:
                break
            time.sleep(self.poll_s)
        answers, errors = {}, {}
        for item in (job.dest.inlined_responses if job.dest else None) or []:
            cid = (item.metadata or {}).get("key")
            if item.error is not None or item.response is None:
                errors[cid] = f"{getattr(item.error, 'code', None)}: {getattr(item.error, 'message', 'no response')}"
                continue
            try:
                answers[cid] = gemini_completions(item.response)[0]
            except (ValueError, TypeError) as e:
                errors[cid] = f"malformed batch answer: {e}"
        if state == "JOB_STATE_FAILED" and not answers and not errors:
            errors[None] = f"batch {batch_id} failed: {getattr(job.error, 'message', None) or 'no reason given'}"
        return BatchResult(state.removeprefix("JOB_STATE_").lower(), answers, {k: redact(v) for k, v in errors.items()})


class BatchAsker:
    """Asks through a batch API (`OpenAIBatches`, `GeminiBatches`), each request in at most `attempts`
    batches: batches already submitted for these requests (by a run that died) are polled, not
    submitted again; what a batch left unanswered goes into a new one."""

    def __init__(self, batches, store: CacheStore, attempts: int = 3):
        self.batches, self.store, self.attempts = batches, store, attempts
        self.identity = batches.teacher.identity
        self._stop: Exception | None = None

    def stop(self, error: Exception) -> None:
        if self._stop is None:
            self._stop = error

    def stopped(self) -> Exception | None:
        return self._stop

    def close(self) -> None:
        """Nothing to free: the clients hold no connection between calls."""

    def ask(self, requests: list[Request], on_done: OnDone, on_error: OnError) -> None:
        pending = {(r.key(self.identity), r.sample_index): r for r in requests}
        submitted: Counter = Counter()  # key -> batches it went into in this call
        while pending and not self._stop:
            if INTERRUPT.is_set():  # submitted batches are in the store: the next run polls them
                raise interrupted()
            waiting = self.store.batches_of(list(pending))
            queued = {k for ks in waiting.values() for k in ks}
            new = [k for k in pending if k not in queued]
            if new:
                for start in range(0, len(new), MAX_LINES):
                    chunk = new[start:start + MAX_LINES]
                    batch_id = self.batches.submit([pending[k] for k in chunk], chunk)
                    self.store.put_batch(self.identity, batch_id, chunk)  # before polling: a crash resumes it
                    submitted.update(chunk)
                continue
            for batch_id, ours in waiting.items():
                self._collect(batch_id, ours, pending, submitted, on_done, on_error)
                if self._stop:  # the cache cannot be written: the batch stays recorded, the next run polls it
                    return
                self.store.end_batch(batch_id, ours)

    def _collect(self, batch_id: str, ours: list, pending: dict, submitted: Counter, on_done: OnDone,
                 on_error: OnError) -> None:
        """Waits for a batch; hands on its answers, and the errors of requests that had their tries."""
        result = self.batches.wait(batch_id)
        answered = [k for k in ours if custom_id(*k) in result.answers]
        if answered:
            on_done([pending[k] for k in answered], [result.answers[custom_id(*k)] for k in answered])
        for k in answered:
            pending.pop(k)
        for k in ours:  # an error, or no line at all (expired): again, unless it had its tries
            if k in pending and submitted[k] >= self.attempts:
                error = result.errors.get(custom_id(*k)) or result.errors.get(None) or \
                    f"not answered by batch {batch_id} ({result.status})"
                on_error([pending.pop(k)], error)


def batches_for(teacher, poll_s: float):
    """The batch client of a remote teacher: OpenAI's or Gemini's Batch API."""
    from tasks.teachers.gemini import GeminiTeacher

    if type(teacher) is OpenAITeacher:
        return OpenAIBatches(teacher, poll_s)
    if type(teacher) is GeminiTeacher:
        return GeminiBatches(teacher, poll_s)
    raise TypeError(type(teacher).__name__)


def describe_error(response: dict, error: dict | None) -> str:
    if error:
        return f"{error.get('code')}: {error.get('message')}"
    body = response.get("body") or {}
    message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
    return f"HTTP {response.get('status_code')}: {message or body}"
