"""SQLite store of teacher responses, keyed by (request_key, sample_index).

Each response is committed as it arrives, so a crash loses only what was in flight.
Errors live in their own table, so a failure never masquerades as an answer.
"""

import sqlite3
import threading
import time
from pathlib import Path

from tasks.teachers import Completion

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    request_key TEXT NOT NULL, sample_index INTEGER NOT NULL, identity TEXT NOT NULL,
    content TEXT NOT NULL, reasoning TEXT, finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency_s REAL NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (request_key, sample_index));
CREATE TABLE IF NOT EXISTS errors (
    request_key TEXT NOT NULL, sample_index INTEGER NOT NULL, identity TEXT NOT NULL,
    error TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (request_key, sample_index));
"""
FIELDS = ("content", "reasoning", "finish_reason", "prompt_tokens", "completion_tokens", "latency_s")


class CacheStore:
    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # a commit survives a killed process, without an fsync each
        self.db.executescript(SCHEMA)
        self.lock = threading.Lock()

    def get_many(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], Completion]:
        found = {}
        with self.lock:
            for start in range(0, len(keys), 500):  # SQLite caps bound parameters per statement
                chunk = keys[start:start + 500]
                where = " OR ".join(["(request_key=? AND sample_index=?)"] * len(chunk))
                rows = self.db.execute(
                    f"SELECT request_key, sample_index, {', '.join(FIELDS)} FROM responses WHERE {where}",
                    [v for k in chunk for v in k],
                ).fetchall()
                found.update({(r[0], r[1]): Completion(*r[2:]) for r in rows})
        return found

    def put_many(self, identity: str, items: list[tuple[str, int, Completion]]) -> None:
        rows = [(k, i, identity, *(getattr(c, f) for f in FIELDS), time.time()) for k, i, c in items]
        with self.lock, self.db:
            self.db.executemany(f"INSERT OR REPLACE INTO responses VALUES ({', '.join('?' * 10)})", rows)
            self.db.executemany("DELETE FROM errors WHERE request_key=? AND sample_index=?",
                                [(k, i) for k, i, _ in items])

    def put_error(self, identity: str, key: str, index: int, error: str) -> None:
        with self.lock, self.db:
            self.db.execute("INSERT OR REPLACE INTO errors VALUES (?, ?, ?, ?, ?)",
                            (key, index, identity, error, time.time()))

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
