"""SQLite store of teacher responses, keyed by (request_key, sample_index).

Each response is committed as it arrives, so a crash loses only what was in flight.
Errors live in their own table, so a failure never masquerades as an answer. A request being
asked is claimed in `claims` with a lease its holder renews while it waits: another process
working on the same data directory waits for it instead of asking again, and takes it over
once the lease runs out (its holder died).
"""

import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path

from teacher_cache import unstored
from teacher_cache.types import Completion

WRITE_FAILURES = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM")

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    request_key TEXT NOT NULL, sample_index INTEGER NOT NULL, identity TEXT NOT NULL,
    content TEXT NOT NULL, reasoning TEXT, finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency_s REAL NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (request_key, sample_index));
CREATE TABLE IF NOT EXISTS errors (
    request_key TEXT NOT NULL, sample_index INTEGER NOT NULL, identity TEXT NOT NULL,
    error TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (request_key, sample_index));
CREATE TABLE IF NOT EXISTS batch_items (
    request_key TEXT NOT NULL, sample_index INTEGER NOT NULL, identity TEXT NOT NULL, batch_id TEXT NOT NULL,
    submitted_at REAL NOT NULL, PRIMARY KEY (request_key, sample_index));
CREATE TABLE IF NOT EXISTS claims (
    request_key TEXT NOT NULL, sample_index INTEGER NOT NULL, owner TEXT NOT NULL,
    expires_at REAL NOT NULL, PRIMARY KEY (request_key, sample_index));
"""
CHUNK = 400  # keys per statement: two bound parameters each, under the 999 older SQLite builds allow
FIELDS = ("content", "reasoning", "finish_reason", "prompt_tokens", "completion_tokens", "latency_s")


@contextmanager
def naming(path: Path):
    """SQLite's errors ("disk I/O error", "database or disk is full", "file is not a database")
    with the cache file they are about; a failed write says why (full, read-only, permission)."""
    try:
        yield
    except sqlite3.DatabaseError as e:
        if (getattr(e, "sqlite_errorname", "") or "").startswith(WRITE_FAILURES):
            raise unstored.unwritable(path, e) from e
        if str(path) in str(e):
            raise
        raise type(e)(f"{path}: {e}") from e


def count_since(path: Path, since: float, timeout_s: float = 0.5) -> int | None:
    """Responses stored at or after `since`, read without opening the cache for writing (an
    interrupted command's last line): None when it cannot be read within `timeout_s`."""
    if not Path(path).exists():
        return 0
    try:
        with closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s)) as db:
            return db.execute("SELECT COUNT(*) FROM responses WHERE created_at >= ?", (since,)).fetchone()[0]
    except sqlite3.Error:
        return None


class CacheStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise unstored.unwritable(self.path, e) from e
        with naming(self.path):
            self.db = sqlite3.connect(path, check_same_thread=False, timeout=60)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # a commit survives a killed process, without an fsync each
            self.db.executescript(SCHEMA)
        self.lock = threading.Lock()
        self.import_unstored()

    def import_unstored(self) -> int:
        """Stores the answers an earlier run received but could not store (its side files); how many."""
        n = 0
        for side in unstored.pending(self.path):
            rows = unstored.load(side)
            for identity in {r[0] for r in rows}:
                self.put_many(identity, [(k, i, c) for who, k, i, c in rows if who == identity])
            side.unlink()
            n += len(rows)
        return n

    def get_many(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], Completion]:
        with self.lock:
            rows = self._select(f"request_key, sample_index, {', '.join(FIELDS)}", "responses", keys)
        return {(r[0], r[1]): Completion(*r[2:]) for r in rows}

    def put_many(self, identity: str, items: list[tuple[str, int, Completion]]) -> None:
        rows = [(k, i, identity, *(getattr(c, f) for f in FIELDS), time.time()) for k, i, c in items]
        with naming(self.path), self.lock, self.db:
            self.db.executemany(f"INSERT OR REPLACE INTO responses VALUES ({', '.join('?' * 10)})", rows)
            self.db.executemany("DELETE FROM errors WHERE request_key=? AND sample_index=?",
                                [(k, i) for k, i, _ in items])
            self.db.executemany("DELETE FROM claims WHERE request_key=? AND sample_index=?",
                                [(k, i) for k, i, _ in items])

    def put_error(self, identity: str, key: str, index: int, error: str) -> None:
        with naming(self.path), self.lock, self.db:
            self.db.execute("INSERT OR REPLACE INTO errors VALUES (?, ?, ?, ?, ?)",
                            (key, index, identity, error, time.time()))
            self.db.execute("DELETE FROM claims WHERE request_key=? AND sample_index=?", (key, index))

    def put_batch(self, identity: str, batch_id: str, keys: list[tuple[str, int]]) -> None:
        """Records that `keys` were submitted in batch `batch_id` (before it is polled)."""
        with naming(self.path), self.lock, self.db:
            self.db.executemany("INSERT OR REPLACE INTO batch_items VALUES (?, ?, ?, ?, ?)",
                                [(*k, identity, batch_id, time.time()) for k in keys])

    def batches_of(self, keys: list[tuple[str, int]]) -> dict[str, list[tuple[str, int]]]:
        """The batches some of `keys` are waiting in: batch id -> its keys among them."""
        out: dict[str, list] = {}
        with self.lock:
            for k, i, b in self._select("request_key, sample_index, batch_id", "batch_items", keys):
                out.setdefault(b, []).append((k, i))
        return out

    def end_batch(self, batch_id: str, keys: list[tuple[str, int]]) -> None:
        """The batch has ended and what it said of `keys` is stored: they wait in it no more."""
        with naming(self.path), self.lock, self.db:
            self.db.executemany("DELETE FROM batch_items WHERE batch_id=? AND request_key=? AND sample_index=?",
                                [(batch_id, *k) for k in keys])

    def claim(self, keys: list[tuple[str, int]], owner: str, lease_s: float,
              alive=lambda owner: True) -> set[tuple[str, int]]:
        """Claims the keys nobody else holds and no response answers; returns those now ours.
        Claims past their lease, or whose owner `alive` says is gone, are void."""
        now = time.time()
        with naming(self.path), self.lock, self.db:
            self.db.execute("BEGIN IMMEDIATE")  # one claimant at a time, across processes
            self.db.execute("DELETE FROM claims WHERE expires_at < ?", (now,))
            owners = [o for (o,) in self.db.execute("SELECT DISTINCT owner FROM claims").fetchall()]
            self.db.executemany("DELETE FROM claims WHERE owner=?", [(o,) for o in owners if not alive(o)])
            held = self._held(keys)
            mine = [k for k in keys if held.get(k, owner) == owner]
            answered = set(self._answered(mine))
            mine = [k for k in mine if k not in answered]
            self.db.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                                [(*k, owner, now + lease_s) for k in mine])
        return set(mine)

    def renew(self, keys: list[tuple[str, int]], owner: str, lease_s: float) -> None:
        with self.lock, self.db:
            self.db.executemany("UPDATE claims SET expires_at=? WHERE request_key=? AND sample_index=? AND owner=?",
                                [(time.time() + lease_s, *k, owner) for k in keys])

    def release(self, keys: list[tuple[str, int]], owner: str) -> None:
        with self.lock, self.db:
            self.db.executemany("DELETE FROM claims WHERE request_key=? AND sample_index=? AND owner=?",
                                [(*k, owner) for k in keys])

    def failed(self, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """The keys with a recorded error and no response."""
        with self.lock:
            return {tuple(r) for r in self._select("request_key, sample_index", "errors", keys)}

    def claimed(self, keys: list[tuple[str, int]], alive=lambda owner: True) -> set[tuple[str, int]]:
        """The keys a living owner holds an unexpired claim on."""
        with self.lock:
            held = self._held(keys, with_expiry=True)
        return {k for k, (owner, exp) in held.items() if exp > time.time() and alive(owner)}

    def _held(self, keys, with_expiry: bool = False) -> dict:
        rows = self._select("request_key, sample_index, owner, expires_at", "claims", keys)
        return {(k, i): (owner, exp) if with_expiry else owner for k, i, owner, exp in rows}

    def _answered(self, keys) -> list[tuple[str, int]]:
        return [tuple(r) for r in self._select("request_key, sample_index", "responses", keys)]

    def _select(self, columns: str, table: str, keys: list[tuple[str, int]]) -> list[tuple]:
        """`columns` of the rows of `table` at these (request_key, sample_index) keys (the caller holds
        the lock), asked CHUNK keys per statement."""
        rows = []
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start:start + CHUNK]
            where = " OR ".join(["(request_key=? AND sample_index=?)"] * len(chunk))
            rows += self.db.execute(f"SELECT {columns} FROM {table} WHERE {where}",
                                    [v for key in chunk for v in key]).fetchall()
        return rows

    def count(self) -> int:
        with self.lock:
            return self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def errors(self, identity: str | None = None) -> dict[tuple[str, int], str]:
        """Recorded failures (request_key, sample_index) -> error, for one teacher or all."""
        sql, args = "SELECT request_key, sample_index, error FROM errors", ()
        if identity:
            sql, args = sql + " WHERE identity=?", (identity,)
        with self.lock:
            return {(k, i): e for k, i, e in self.db.execute(sql, args).fetchall()}
