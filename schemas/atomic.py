"""Atomic writes, and the leftovers a killed writer leaves behind.

A file is written under a hidden temporary name that carries its writer (host and pid) and is
renamed into place; a directory is built beside its final place and swapped in with one rename.
A killed writer leaves its temporaries behind; the next writer in that directory removes those
whose writer is gone. A living writer's are left alone: two processes may write in one directory.

    .trl.parquet~myhost-4242~k3j9.tmp      a file being written by pid 4242 on myhost
"""

import ctypes
import errno
import os
import re
import secrets
import shutil
import socket
from pathlib import Path

TEMP = re.compile(r"^\.(?P<name>.+)~(?P<host>[^~]+)-(?P<pid>\d+)~[0-9a-z]+\.tmp$")


def owner() -> str:
    """This process, as a claim or a temporary file names it: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(who: str) -> bool:
    """Whether `who` (host:pid) may still be writing: a process on this machine that has exited
    is not; another machine's is assumed alive (a lease decides for those)."""
    host, _, pid = who.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_path(final: Path) -> Path:
    """A fresh hidden temporary beside `final`, named for this process."""
    final = Path(final)
    return final.with_name(f".{final.name}~{socket.gethostname()}-{os.getpid()}~{secrets.token_hex(4)}.tmp")


def sweep(directory: Path) -> list[Path]:
    """Removes the temporaries in `directory` whose writer is gone; returns what was removed.
    A directory left half swapped (`.<name>.old` present, `<name>` missing) is put back."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        m = TEMP.match(entry.name)
        if m and not owner_alive(f"{m['host']}:{m['pid']}"):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() and not entry.is_symlink() else entry.unlink(
                missing_ok=True)
            removed.append(entry)
        elif entry.name.startswith(".") and entry.name.endswith(".old") and entry.is_dir():
            final = directory / entry.name[1:-4]
            if not final.exists():
                entry.rename(final)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(new: Path, final: Path) -> None:
    """Puts the directory `new` at `final` in one step: a reader sees the old one or the new one,
    never neither; the old one is removed afterwards."""
    new, final = Path(new), Path(final)
    if final.exists() and _exchange(new, final):
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old directory
        return
    old = final.with_name(f".{final.name}.old")  # no exchange: two renames; sweep() repairs a kill between them
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def write_bytes(path: Path, data: bytes) -> Path:
    """Writes a file atomically: it is either absent (or its old self) or complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode())
