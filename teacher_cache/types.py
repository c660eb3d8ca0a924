"""What a teacher is asked and answers, and the two shapes of backend the cache wraps.

A `Request` is one (prompt, sampling parameters, sample index); its cache key never holds the sample
index nor a secret. A `Teacher` answers a batch in this process (`complete`); a `RemoteTeacher` sends
one HTTP request for requests that differ only in sample index, and is asked through something with
`ask(requests, on_done, on_error)` (an `Asker`: the request engine, a batch API), which the cache wraps.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int = 0
    stop_at_answer: bool = False  # local models: end a path once its "The answer is ..." sentence is complete


@dataclass(frozen=True)
class ImageRef:
    sha: str  # sha256 of the PNG: what the cache key uses
    path: Path = field(compare=False)  # where its bytes are


@dataclass(frozen=True)
class Request:
    messages: tuple[tuple[str, str], ...]  # ((role, content), ...)
    params: SamplingParams
    sample_index: int
    images: tuple[ImageRef, ...] = ()  # attached to the last user message

    def key(self, identity: str) -> str:
        """Cache key of the request, without its sample index and never with a secret."""
        return request_key(identity, self.messages, self.params, tuple(i.sha for i in self.images))

    def group(self) -> tuple:
        """Requests with equal groups differ only in sample index: one `n=k` request can serve them."""
        return self.messages, self.params, self.images


@lru_cache(maxsize=1 << 16)  # the k requests of a problem share one key; stages ask for it more than once
def request_key(identity: str, messages: tuple, params: SamplingParams, image_shas: tuple[str, ...]) -> str:
    kept = {k: v for k, v in vars(params).items() if k != "stop_at_answer" or v}  # keys made before it stay
    payload = {"teacher": identity, "messages": messages, "params": kept}
    if image_shas:  # by content hash, so moving the data directory keeps the cache
        payload["images"] = list(image_shas)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(slots=True)  # built once per cached answer read: a cached re-run makes thousands
class Completion:
    content: str
    reasoning: str | None
    finish_reason: str  # stop | length | other provider reasons (content_filter, safety, ...)
    prompt_tokens: int
    completion_tokens: int  # reasoning tokens included: they are billed as output
    latency_s: float


class Teacher(Protocol):
    identity: str  # backend + model: what makes two answers comparable
    batch_size: int  # requests handed to `complete` at once

    def complete(self, requests: list[Request]) -> list[Completion]: ...

    def close(self) -> None:
        """Frees what the backend holds (a loaded model); it may be used again after."""
        ...


@runtime_checkable
class RemoteTeacher(Protocol):
    identity: str
    model: str
    base_urls: list[str]  # the endpoint's replicas; `send` is told which one to use
    endpoint: object  # its `EndpointConfig`: limits and retries the engine applies

    async def send(self, base_url: str, requests: list[Request]) -> list[Completion]:
        """One HTTP request for `requests` (same `group()`); a completion per request, in order.

        Raises `Transient` (retry), `Refused` (a feature the endpoint rejects) or anything else (give up).
        """
        ...


OnDone = Callable[[list[Request], list[Completion]], None]
OnError = Callable[[list[Request], str], None]


@runtime_checkable
class Asker(Protocol):
    """Asks a remote backend for requests, handing each answer (or error) to a callback as it arrives."""

    identity: str

    def ask(self, requests: list[Request], on_done: OnDone, on_error: OnError) -> None:
        """Blocks until every request has ended, or, once stopped, until those in flight have."""
        ...

    def stop(self, error: Exception) -> None:
        """No new request leaves from now on (the cache cannot store the answers)."""
        ...

    def stopped(self) -> Exception | None:
        """Why it stopped sending, as the error the stage ends with; None while it sends."""
        ...

    def close(self) -> None: ...
