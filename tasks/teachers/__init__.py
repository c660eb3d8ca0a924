"""Teachers: one small class per backend behind a protocol, chosen by name from `TEACHERS`.

A backend only turns `Request`s into `Completion`s. Caching, resume and accounting wrap it
once (`teacher_cache.CachedTeacher`); retries and rate limits for remote backends live once in
`tasks.teachers.engine.RequestEngine`.

- `local` (`Teacher`): transformers in this process, batched `complete(requests)`.
- `openai`, `gemini`, `vllm` (`RemoteTeacher`): `async send(base_url, requests)` makes one
  HTTP request for requests that differ only in sample index (k paths with `n=k`).
"""

import email.utils
import hashlib
import importlib
import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)


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


class Transient(Exception):
    """Worth retrying: 429, 5xx, a timeout, a dropped connection or a malformed body."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked us to wait


class Refused(Exception):
    """The endpoint rejects a feature (`n`, thought summaries); the backend stops using it."""

    def __init__(self, feature: str, message: str):
        super().__init__(f"{feature} refused: {message}")
        self.feature = feature


def split_think(text: str) -> tuple[str | None, str]:
    """(`<think>` reasoning or None, the rest). An unclosed <think> is all reasoning; a
    `</think>` without its opening tag (R1 distills, whose chat template opens it in the
    prompt) closes reasoning that began at the start."""
    m = THINK.search(text)
    if not m:
        head, tag, tail = text.partition("</think>")
        return (head.strip(), tail.strip()) if tag else (None, text.strip())
    return m.group(1).strip(), (text[: m.start()] + text[m.end():]).strip()


def share(total: int, weights: list[int]) -> list[int]:
    """Split an integer total in proportion to weights; the parts sum to the total exactly."""
    w = [max(x, 1) for x in weights]
    parts = [total * x // sum(w) for x in w]
    for i in range(total - sum(parts)):
        parts[i % len(parts)] += 1
    return parts


REFUSAL = re.compile(r"not supported|unsupported|does not support|only supports|must be|not allowed|invalid|"
                     r"not enabled|not available", re.I)


def refused_feature(message: str, features: dict[str, str]) -> str | None:
    """Which of `features` (name -> pattern) a 400 message says the endpoint rejects, if any."""
    if not REFUSAL.search(message):
        return None
    return next((f for f, pat in features.items() if re.search(pat, message, re.I)), None)


def retry_after(headers) -> float | None:
    """Seconds from `retry-after-ms`, `retry-after` (seconds or an HTTP date); None if absent."""
    if headers is None:
        return None
    if ms := headers.get("retry-after-ms"):
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if email.utils.parsedate_tz(value) else None
        return max(0.0, when.timestamp() - time.time()) if when else None


# Imported by name on use, so naming the local teacher never imports an SDK (nor the reverse).
TEACHERS = {"local": "tasks.teachers.local:LocalTeacher", "student": "tasks.teachers.local:StudentTeacher",
            "openai": "tasks.teachers.openai_compat:OpenAITeacher",
            "gemini": "tasks.teachers.gemini:GeminiTeacher", "vllm": "tasks.teachers.vllm:VllmTeacher"}


def teacher_for(cfg) -> Teacher | RemoteTeacher:
    """The backend a `SampleConfig` (or `CaptionConfig`) names. Constructing one starts and asks nothing."""
    name = getattr(cfg, "teacher", None) or cfg.captioner
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; choose one of {sorted(TEACHERS)}")
    module, cls = TEACHERS[name].split(":")
    return getattr(importlib.import_module(module), cls).from_config(cfg)
