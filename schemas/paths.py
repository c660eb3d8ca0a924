"""Every path in the data directory, in one place."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    def table(self, name: str) -> Path:
        """Directory holding one table's parquet shards, e.g. data/samples/."""
        return self.root / name

    def image(self, sha: str) -> Path:
        return self.root / "images" / sha[:2] / f"{sha}.png"

    def arm(self, arm: str) -> Path:
        return self.root / "arms" / arm

    def student(self, run: str, name: str) -> Path:
        return self.root / "students" / run / name

    def evals(self, run: str) -> Path:
        return self.root / "evals" / run

    def report(self, run: str) -> Path:
        return self.root / "reports" / run

    def deploy(self, run: str) -> Path:
        """deploy/RUN/: every format written and measured (formats/), the exports per student."""
        return self.root / "deploy" / run

    @property
    def teacher_cache(self) -> Path:
        return self.root / "teacher_cache" / "cache.sqlite"
