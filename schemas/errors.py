"""The errors a user can act on, and how the CLI tells them apart from bugs.

`InputError`: bad input or a missing earlier stage, named with the file or the command to run.
`StageFailed`: a stage that ran and could not do its work (every request failed, every row
rejected), with the most common reasons. `explain` turns these, and the file-system, disk and
cache errors users meet, into one line and exit code 2; anything else is a bug, keeps its
traceback and exits 1.
"""

import contextlib
import errno
import json
import os
import signal
import sqlite3
import threading
from pathlib import Path


class InputError(ValueError):
    """Input the user can fix: a malformed or missing file, a bad name, a stage not yet run."""


class StageFailed(RuntimeError):
    """A stage ran and its work failed (e.g. every request to the teacher failed)."""


class Interrupted(RuntimeError):
    """Ctrl-C or SIGTERM: the stage stopped asking, kept what had arrived and ended (exit 128 + signal)."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted ({signal.Signals(signum).name}): no further requests were sent")
        self.signum = signum


class Interrupt:
    """The first Ctrl-C / SIGTERM the CLI received: whatever asks a model starts no new request.
    Seen by the dask / ray workers of a local cluster too: the CLI names a stop file in
    DISTILLERY_STOP_FILE (workers inherit its environment) and creates it on the signal."""

    ENV = "DISTILLERY_STOP_FILE"

    def __init__(self):
        self._event, self.signum = threading.Event(), int(signal.SIGINT)

    def set(self, signum: int) -> None:
        self.signum = int(signum)
        self._event.set()
        if path := os.environ.get(self.ENV):
            with contextlib.suppress(OSError):
                Path(path).write_text(str(self.signum))

    def is_set(self) -> bool:
        if self._event.is_set():
            return True
        path = os.environ.get(self.ENV)
        if not path or not os.path.exists(path):
            return False
        with contextlib.suppress(OSError, ValueError):
            self.signum = int(Path(path).read_text() or signal.SIGINT)
        self._event.set()
        return True


INTERRUPT = Interrupt()


def interrupt(signum: int) -> None:
    INTERRUPT.set(signum)


def interrupted() -> Interrupted:
    """The error a stage raises once INTERRUPT is set."""
    return Interrupted(INTERRUPT.signum)


FILE_ERRORS = {errno.ENOENT: "no such file or directory", errno.EISDIR: "is a directory, not a file",
               errno.ENOTDIR: "not a directory", errno.EACCES: "permission denied",
               errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EFBIG: "file too large (a file size limit)"}


def explain(e: BaseException) -> tuple[str, int] | None:
    """(one line for the user, exit code), or None when `e` is a bug whose traceback matters."""
    from pydantic import ValidationError

    if isinstance(e, InputError):
        return str(e), 2
    if isinstance(e, StageFailed):
        return str(e), 2
    if isinstance(e, Interrupted):
        return str(e), 128 + e.signum
    if isinstance(e, ValidationError):
        return f"invalid configuration: {validation_line(e)}", 2
    if isinstance(e, OSError) and e.errno in FILE_ERRORS:
        line = f"{FILE_ERRORS[e.errno]}: {e.filename}" if e.filename else str(e.strerror or e)
        return line, 2
    if isinstance(e, OSError) and e.errno == errno.EIO:
        return str(e.strerror or e), 2
    if isinstance(e, sqlite3.DatabaseError):
        return f"the teacher cache could not be used: {e} (a full or failing disk, or not a cache file?)", 2
    if isinstance(e, json.JSONDecodeError):
        return f"malformed JSON: {e}", 2
    return None


MAX_SHOWN = 20  # validation errors named in the one line; the rest are counted


def validation_line(e) -> str:
    """A pydantic ValidationError as one line: `field.path: what is wrong` for each error (the first
    MAX_SHOWN, then how many more)."""
    errors = e.errors()
    parts = [error_part(err) for err in errors[:MAX_SHOWN]]
    more = f"; and {len(errors) - MAX_SHOWN} more errors" if len(errors) > MAX_SHOWN else ""
    return "; ".join(parts) + more


def error_part(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if err["type"] == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        msg += f" (YAML read {value!r} as a number: quote it, '{value}')"
    return f"{loc}: {msg}" if loc else msg
