"""Progress of long work (requests, training steps, answers): a tqdm bar on the terminal and, at
most every `every_s` seconds plus at the start and the end, a `Snapshot` for each registered
listener. `flows/` registers one that writes Prefect log lines and progress artifacts, so a
run's progress shows in the UI; library code never imports Prefect.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm.auto import tqdm


@dataclass(frozen=True)
class Snapshot:
    desc: str
    done: int
    total: int
    unit: str
    postfix: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    final: bool = False

    def line(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items() if v is not None)
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        return f"{self.desc}: {self.done}/{self.total} {self.unit}{pct}{extra}, {self.elapsed_s:.0f} s"


LISTENERS: list[Callable[[Snapshot], None]] = []
_listeners_lock = threading.Lock()


def listen(fn: Callable[[Snapshot], None]) -> Callable[[], None]:
    """Registers `fn`; returns the function that removes it."""
    with _listeners_lock:
        LISTENERS.append(fn)
    return lambda: _remove(fn)


def _remove(fn) -> None:
    with _listeners_lock:
        if fn in LISTENERS:
            LISTENERS.remove(fn)


class Progress:
    def __init__(self, desc: str, total: int, unit: str = "it", every_s: float = 10.0, done: int = 0,
                 disable: bool = False):
        """`disable`: nothing to show (no bar, no snapshots), e.g. when every answer is cached."""
        self.desc, self.unit, self.every_s, self.disable = desc, unit, every_s, disable
        self.total, self.done, self.postfix = total, done, {}
        self.start = self._last = time.monotonic()
        self._emitted: tuple[int, int] | None = None
        self.bar = tqdm(total=total, initial=done, desc=desc, unit=unit, disable=disable)
        self._emit()

    def update(self, n: int = 1, **postfix) -> None:
        self.done += n
        self.postfix.update(postfix)
        self.bar.update(n)
        if postfix:
            self.bar.set_postfix({k: v for k, v in self.postfix.items() if v is not None}, refresh=False)
        if time.monotonic() - self._last >= self.every_s:
            self._emit()

    def reset(self, total: int, done: int = 0) -> None:
        self.total, self.done = total, done
        self.bar.reset(total=total)
        self.bar.update(done)

    def close(self) -> None:
        self.bar.close()
        self._emit(final=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _emit(self, final: bool = False) -> None:
        self._last = time.monotonic()
        if self.disable or (final and self._emitted == (self.done, self.total)):  # said already
            return
        self._emitted = (self.done, self.total)
        snap = Snapshot(self.desc, self.done, self.total, self.unit, dict(self.postfix), self._last - self.start, final)
        for fn in list(LISTENERS):
            try:
                fn(snap)
            except Exception:  # noqa: BLE001  a listener never stops the work it watches
                pass
