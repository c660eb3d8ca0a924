"""When the cache cannot be written: why (in words a user acts on), and a side file for the answers
received but not stored, which the next run that opens the cache imports (so they are never paid twice).

The side file is `unstored-<tag>-<pid>-<time>.jsonl` beside the cache, else (that disk is full) in
the system's temporary directory, where the next run on the same cache path finds it by its tag.
"""

import errno
import hashlib
import json
import os
import resource
import sqlite3
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from schemas.errors import StageFailed
from teacher_cache.types import Completion

FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
DENIED = (errno.EACCES, errno.EPERM)
LOW_FREE_BYTES = 64 << 20  # less free than this on the device: "the disk is full"


class CacheUnwritable(StageFailed):
    """The teacher cache cannot be written (full disk, read-only file system, permissions)."""


def cause(path: Path, e: BaseException) -> str:
    """Why writing `path` failed: full (or a size limit / quota), read-only, permission, else the error."""
    code = getattr(e, "sqlite_errorname", "") or ""
    err = getattr(e, "errno", None)
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return str(e)
    free = st.f_bavail * st.f_frsize
    if st.f_flag & os.ST_RDONLY or err == errno.EROFS:
        return "the file system is read-only"
    if err in DENIED or not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "permission denied"
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if "FULL" in code or "IOERR" in code or err in FULL:  # SQLite reports a size limit's EFBIG as an I/O error
        if free < LOW_FREE_BYTES:
            return f"the disk is full ({free / 1e6:.1f} MB free)"
        if limit != resource.RLIM_INFINITY:
            return f"a file size limit was reached ({limit} bytes, `ulimit -f`)"
        return (f"a disk quota was reached ({free / 1e6:.0f} MB free on the disk)" if "FULL" in code or err in FULL
                else f"a disk I/O error ({free / 1e6:.0f} MB free on the disk): {e}")
    if "READONLY" in code:
        return "the cache file is read-only"
    return f"{type(e).__name__}: {e}"


def unwritable(path: Path, e: BaseException) -> CacheUnwritable:
    return CacheUnwritable(f"the teacher cache {path} cannot be written: {cause(path, e)}")


def is_write_failure(e: BaseException) -> bool:
    return isinstance(e, (CacheUnwritable, OSError, sqlite3.OperationalError))


def save(cache: Path, items: list[tuple[str, str, int, Completion]]) -> Path | None:
    """Writes (identity, request_key, sample_index, answer) rows to a side file; its path, or None
    when no directory took it."""
    text = "".join(json.dumps({"identity": i, "key": k, "index": n, "answer": asdict(c)}) + "\n" for i, k, n, c in items)
    name = f"unstored-{tag(cache)}-{os.getpid()}-{time.time_ns()}.jsonl"
    for folder in (cache.parent, Path(tempfile.gettempdir())):
        path = folder / name
        try:
            path.write_text(text)
            return path
        except OSError:
            path.unlink(missing_ok=True)
    return None


def tag(cache: Path) -> str:
    return hashlib.sha256(str(cache.resolve()).encode()).hexdigest()[:12]


def pending(cache: Path) -> list[Path]:
    """Side files for this cache: any beside it, and those in the temporary directory with its tag."""
    return sorted(cache.parent.glob("unstored-*.jsonl")) + sorted(
        Path(tempfile.gettempdir()).glob(f"unstored-{tag(cache)}-*.jsonl"))


def load(path: Path) -> list[tuple[str, str, int, Completion]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["identity"], r["key"], r["index"], Completion(**r["answer"])) for r in rows]
