"""Teachers: one small class per backend behind the `Teacher` protocol, chosen by name.

A backend only turns `Request`s into `Completion`s. Caching, resume and accounting wrap it
once (`teacher_cache.CachedTeacher`).
"""

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Protocol

THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int = 0


@dataclass(frozen=True)
class Request:
    messages: tuple[tuple[str, str], ...]  # ((role, content), ...)
    params: SamplingParams
    sample_index: int

    def key(self, identity: str) -> str:
        """Cache key of the request, without its sample index and never with a secret."""
        payload = {"teacher": identity, "messages": self.messages, "params": asdict(self.params)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class Completion:
    content: str
    reasoning: str | None
    finish_reason: str  # stop | length
    prompt_tokens: int
    completion_tokens: int
    latency_s: float


class Teacher(Protocol):
    identity: str  # backend + model (+ endpoint): what makes two answers comparable
    batch_size: int  # requests handed to `complete` at once

    def complete(self, requests: list[Request]) -> list[Completion]: ...


def split_think(text: str) -> tuple[str | None, str]:
    """(`<think>` reasoning or None, the rest). An unclosed <think> is all reasoning."""
    m = THINK.search(text)
    if not m:
        return None, text.strip()
    return m.group(1).strip(), (text[: m.start()] + text[m.end():]).strip()


def teacher_for(name: str, model: str, batch_size: int) -> Teacher:
    from tasks.teachers.local import LocalTeacher

    teachers = {"local": LocalTeacher}
    if name not in teachers:
        raise ValueError(f"unknown teacher {name!r}; choose one of {sorted(teachers)}")
    return teachers[name](model, batch_size=batch_size)
