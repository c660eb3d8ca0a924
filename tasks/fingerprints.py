"""Skipping work whose inputs did not change.

An output written by a stage gets a hidden sidecar, `.<name>.inputs`, holding the fingerprint of
what it was computed from: the config section that shapes it and the content of every input
file. A re-run with the same fingerprint leaves the output as it is. The sidecar is written after
the output, so a run killed in between recomputes it (never the reverse).
"""

import hashlib
import json
from pathlib import Path

from schemas import atomic

_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: each file hashed once per process


def file_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as f:
            _DIGESTS[key] = hashlib.file_digest(f, "sha256").hexdigest()
    return _DIGESTS[key]


def fingerprint(settings, inputs: list[Path]) -> str:
    """Of the settings (pydantic models, dicts, lists, strings) and the input files' contents
    (a missing input counts as missing)."""
    dump = settings.model_dump(mode="json") if hasattr(settings, "model_dump") else settings
    h = hashlib.sha256(json.dumps(dump, sort_keys=True, default=lambda o: o.model_dump(mode="json")).encode())
    for p in sorted(Path(p) for p in inputs):
        h.update(f"\0{p.name}\0".encode())
        h.update(file_digest(p).encode() if p.is_file() else b"missing")
    return h.hexdigest()[:32]


def sidecar(output: Path) -> Path:
    output = Path(output)
    return output.with_name(f".{output.name}.inputs")


def unchanged(outputs: list[Path], fp: str) -> bool:
    """Every output exists and was computed from inputs with this fingerprint."""
    for out in outputs:
        side = sidecar(out)
        if not (Path(out).exists() and side.is_file() and side.read_text() == fp):
            return False
    return True


def record(outputs: list[Path], fp: str) -> None:
    for out in outputs:
        atomic.write_text(sidecar(out), fp)


def forget(output: Path) -> None:
    sidecar(output).unlink(missing_ok=True)
