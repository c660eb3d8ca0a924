"""Remote teachers: one small class per backend behind a protocol, chosen by name from
`students.backends.TEACHERS` (with the in-process `local` and `student` teachers of students/teachers.py).

A backend only turns `Request`s into `Completion`s. Caching, resume and accounting wrap it
once (`teacher_cache.CachedTeacher`); retries and rate limits for remote backends live once in
`tasks.teachers.engine.RequestEngine`.

- `local`, `student` (`Teacher`, students/teachers.py): transformers in this process, batched `complete(requests)`.
- `openai`, `gemini`, `vllm` (`RemoteTeacher`): `async send(base_url, requests)` makes one
  HTTP request for requests that differ only in sample index (k paths with `n=k`).
"""

import email.utils
import re
import time

from teacher_cache.types import (  # noqa: F401  re-exported for the backends and their callers
    Completion,
    ImageRef,
    RemoteTeacher,
    Request,
    SamplingParams,
    Teacher,
    request_key,
)

THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)


class Transient(Exception):
    """Worth retrying: 429, 5xx, a timeout, a dropped connection or a malformed body."""

    def __init__(self, message: str, retry_after: float | None = None, billed: bool = False):
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked us to wait
        self.billed = billed  # the server may have charged for it: it answered (unreadably) or never said


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
