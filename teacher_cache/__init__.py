"""The durable per-request cache of teacher (and captioner) responses."""

from teacher_cache.cached import CachedTeacher, CacheStats
from teacher_cache.store import CacheStore

__all__ = ["CacheStore", "CachedTeacher", "CacheStats"]
