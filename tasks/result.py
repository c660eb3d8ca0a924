"""What a shard stage did to one shard, one type for every stage, added up field by field for a stage."""

from collections import Counter
from dataclasses import dataclass, field, fields

from teacher_cache import CacheStats


@dataclass
class ShardResult:
    rows: int = 0  # rows of its output table
    skipped: int = False  # left as it was (outputs unchanged since the last run); added up: how many shards
    requests: int = 0  # asked of the backend or served from the cache
    cached: int = 0  # requests served from the cache
    new: int = 0  # requests answered now
    failed: int = 0  # requests that failed (a re-run asks them again)
    tokens_in: int = 0  # of the new requests: what this run paid for
    tokens_out: int = 0
    cost_usd: float | None = 0.0  # of the new requests; None: the model has no known price
    errors: Counter = field(default_factory=Counter)  # why requests failed: error -> requests
    rejects: Counter = field(default_factory=Counter)  # reason -> problems (x variants) not sent

    def __add__(self, other: "ShardResult") -> "ShardResult":
        def add(a, b):
            return None if a is None or b is None else a + b

        return ShardResult(**{f.name: add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})

    @classmethod
    def asked(cls, stats: CacheStats, priced: bool, **rest) -> "ShardResult":
        """The result of a shard whose requests went through the cache (`priced`: its model has a price)."""
        return cls(cached=stats.hits, new=stats.new, failed=stats.failed, tokens_in=stats.tokens_in,
                   tokens_out=stats.tokens_out, cost_usd=stats.cost_usd if priced else None,
                   errors=stats.errors, **rest)

    def common_errors(self, n: int = 3) -> str:
        """The most common failures, for a log line or an error message."""
        return "; ".join(f"{count} x {error[:300]}" for error, count in self.errors.most_common(n))

    def spend(self) -> dict:
        """What asking cost, as the stage flows report it."""
        return {"cached": self.cached, "new": self.new, "failed": self.failed, "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out, "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6)}
