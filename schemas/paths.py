"""Every path in the data directory, in one place, and the shards the data stages map over.

A shard is a problems file, named by its path under problems/ without `.parquet`
(e.g. `synthetic/synthetic-00000`); every per-shard output mirrors that name, and a samples file
is <teacher>/<shard>.
"""

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from schemas.errors import InputError
from schemas.tables import read_table


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

    def files(self, table: str) -> list[str]:
        """A table's parquet files, as paths relative to its directory without the suffix."""
        root = self.table(table)
        return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.parquet"))

    def shards(self) -> list[str]:
        """Every problems shard; none is an error naming the stage to run."""
        found = self.files("problems")
        if not found:
            raise InputError(f"no problems in {self.table('problems')}: run `distillery ingest` first")
        return found

    def sample_files(self) -> list[str]:
        """Every samples file (any teacher): <teacher>/<shard>; none is an error naming the stage to run."""
        found = self.files("samples")
        if not found:
            raise InputError(f"no samples in {self.table('samples')}: run `distillery sample` "
                             "(or `distillery import-traces`) first")
        return found

    def problems(self, shard: str) -> pl.DataFrame:
        return read_table(self.table("problems") / f"{shard}.parquet", "problems")

    def problems_for(self, sample_file: str) -> pl.DataFrame:
        """The problems shard a samples file mirrors (samples/<teacher>/<shard>)."""
        return self.problems(sample_file.split("/", 1)[1])

    def captions(self, captioner: str, shard: str | None = None) -> dict[str, str]:
        """problem id -> caption, of one shard or (None) all."""
        root = self.table("captions") / captioner
        df = read_table(root / f"{shard}.parquet" if shard else root, "captions")
        return dict(zip(df["problem_id"], df["caption"], strict=True))
