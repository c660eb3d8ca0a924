"""`CachedTeacher`: wraps any teacher so each (request, sample index) is asked for once.

Raising k from 4 to 8 asks for 4 more samples per problem; a re-run asks for nothing.
"""

from dataclasses import dataclass

from tqdm.auto import tqdm

from tasks.teachers import Completion, Request, Teacher
from teacher_cache.store import CacheStore


@dataclass
class CacheStats:
    hits: int = 0
    new: int = 0
    failed: int = 0

    def __add__(self, other: "CacheStats") -> "CacheStats":
        return CacheStats(self.hits + other.hits, self.new + other.new, self.failed + other.failed)


class CachedTeacher:
    def __init__(self, teacher: Teacher, store: CacheStore):
        self.teacher, self.store = teacher, store

    @property
    def identity(self) -> str:
        return self.teacher.identity

    def complete(self, requests: list[Request], desc: str = "sampling") -> tuple[list[Completion | None], CacheStats]:
        """Completions in request order (None where the backend failed), and what it cost."""
        keys = [(r.key(self.identity), r.sample_index) for r in requests]
        done = self.store.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in done]
        stats = CacheStats(hits=len(requests) - len(todo))
        step = max(1, self.teacher.batch_size)
        with tqdm(total=len(todo), desc=desc, unit="req", disable=not todo) as bar:
            for start in range(0, len(todo), step):
                batch = todo[start:start + step]
                stats += self._ask(batch, requests, keys, done)
                bar.update(len(batch))
                bar.set_postfix(cached=stats.hits, new=stats.new, failed=stats.failed)
        return [done.get(k) for k in keys], stats

    def _ask(self, batch, requests, keys, done) -> CacheStats:
        try:
            answers = self.teacher.complete([requests[i] for i in batch])
        except Exception as e:  # the whole batch failed: record it, keep going
            for i in batch:
                self.store.put_error(self.identity, *keys[i], f"{type(e).__name__}: {e}")
            return CacheStats(failed=len(batch))
        self.store.put_many(self.identity, [(*keys[i], a) for i, a in zip(batch, answers, strict=True)])
        done.update({keys[i]: a for i, a in zip(batch, answers, strict=True)})
        return CacheStats(new=len(batch))
