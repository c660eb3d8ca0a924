"""Each data stage as a function of (config, data dir, shard): read inputs, run, write atomically.

A shard is a problems file, named by its path under problems/ without `.parquet`
(e.g. `synthetic/synthetic-00000`); every per-shard output mirrors that name.
"""

from functools import lru_cache

import polars as pl

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import read_table, write_table
from tasks.arms import build_arm, shortest_wrong
from tasks.caption import caption_shard
from tasks.sample import sample_shard, teacher_dir
from tasks.select import select_shard
from tasks.teachers import teacher_for
from tasks.verify import verify_shard
from teacher_cache import CachedTeacher, CacheStats, CacheStore


def files_of(data: DataDir, table: str) -> list[str]:
    """A table's parquet files, as paths relative to its directory without the suffix."""
    root = data.table(table)
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.parquet"))


def shards(data: DataDir) -> list[str]:
    return files_of(data, "problems")


def sample_files(data: DataDir) -> list[str]:
    """Every samples file (any teacher): <teacher>/<shard>."""
    return files_of(data, "samples")


def problems_of(data: DataDir, shard: str) -> pl.DataFrame:
    return read_table(data.table("problems") / f"{shard}.parquet", "problems")


def captions_of(data: DataDir, captioner: str, shard: str | None = None) -> dict[str, str]:
    root = data.table("captions") / captioner
    df = read_table(root / f"{shard}.parquet" if shard else root, "captions")
    return dict(zip(df["problem_id"], df["caption"], strict=True))


def run_caption(cfg: FactoryConfig, data: DataDir, shard: str) -> int:
    df = caption_shard(cfg.caption.captioner, problems_of(data, shard))
    write_table(df, data.table("captions") / cfg.caption.captioner / f"{shard}.parquet", "captions")
    return df.height


@lru_cache(maxsize=4)
def cached_teacher(name: str, model: str, batch_size: int, db: str) -> CachedTeacher:
    """One teacher (and loaded model) per process, shared by the shard tasks."""
    return CachedTeacher(teacher_for(name, model, batch_size), CacheStore(db))


def run_sample(cfg: FactoryConfig, data: DataDir, shard: str) -> CacheStats:
    s = cfg.sample
    teacher = cached_teacher(s.teacher, s.model, s.batch_size, str(data.teacher_cache))
    df, stats = sample_shard(s, problems_of(data, shard), captions_of(data, cfg.caption.captioner, shard),
                             teacher, desc=f"sampling {shard}")
    write_table(df, data.table("samples") / teacher_dir(teacher.identity) / f"{shard}.parquet", "samples")
    return stats


def problems_for(data: DataDir, sample_file: str) -> pl.DataFrame:
    """The problems shard a samples file mirrors (samples/<teacher>/<shard>)."""
    return problems_of(data, sample_file.split("/", 1)[1])


def run_verify(cfg: FactoryConfig, data: DataDir, sample_file: str) -> int:
    samples = pl.read_parquet(data.table("samples") / f"{sample_file}.parquet")
    df = verify_shard(cfg.verify, samples, problems_for(data, sample_file))
    write_table(df, data.table("verdicts") / f"{sample_file}.parquet", "verdicts")
    return df.height


def run_select(cfg: FactoryConfig, data: DataDir, sample_file: str) -> int:
    samples = pl.read_parquet(data.table("samples") / f"{sample_file}.parquet")
    verdicts_path = data.table("verdicts") / f"{sample_file}.parquet"
    if not verdicts_path.exists():
        raise FileNotFoundError(f"{verdicts_path} is missing: run `distillery verify` first")
    df = select_shard(cfg.select.policy, samples, pl.read_parquet(verdicts_path))
    write_table(df, data.table("selected") / f"{sample_file}.parquet", "selected")
    return df.height


def run_arms(cfg: FactoryConfig, data: DataDir) -> dict[str, int]:
    """Builds every configured arm from the configured teacher's selections; returns row counts."""
    identity = teacher_for(cfg.sample.teacher, cfg.sample.model, cfg.sample.batch_size).identity
    problems = read_table(data.table("problems"), "problems")
    samples, verdicts = read_table(data.table("samples"), "samples"), read_table(data.table("verdicts"), "verdicts")
    selected = read_table(data.table("selected"), "selected")
    captions = captions_of(data, cfg.caption.captioner)
    wrong = shortest_wrong(samples, verdicts, identity)
    counts = {}
    for arm in cfg.arms.arms:
        df = build_arm(arm, problems, captions, selected, wrong, identity)
        write_table(df, data.arm(arm) / "train.parquet", "arms")
        counts[arm] = df.height
    return counts
