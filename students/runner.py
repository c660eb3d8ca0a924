"""The shard stages declared once, and the one runner that executes any of them on one shard. It
sits in students/, above the stages of tasks/, because it opens their backends (students/backends.py),
two of which are models in this process.

A shard stage is a plain function of (config, its input frames, a backend or None) -> its output
frames and a result. `SHARD_STAGES` says, per stage, which files it reads and writes for a shard,
which settings its outputs depend on, which backend it asks and whether an unchanged shard may be
skipped. `run_shard` does the rest the same way for every stage: checks the inputs exist (naming
the stage to run when not), skips a shard whose outputs carry a matching fingerprint, reads the
inputs, opens the backend in the process that runs the task, and writes every output atomically.

    stage     reads (per shard)            writes                               backend        skips
    caption   problems                     captions/<captioner>/                remote captioner  no (cache)
    sample    problems, captions           samples/<teacher>/, rejects/sample-  sample teacher    no (cache)
    verify    samples, problems            verdicts/                            verify.judge      yes
    select    samples, verdicts            selected/                            -                 yes

caption and sample re-read the teacher cache instead of skipping: a shard whose requests partly
failed must be asked again, and answers already paid for cost nothing to read.

Backends (`students.backends.shared`): opened in the process that runs the task, once per process and
stage (a ray worker: once per task), until the flow closes them at the stage's end; a dask or ray worker has its share
(1 / runner.workers) of the endpoint's rpm, tpm and concurrency.

Every stage returns a `ShardResult` (tasks/result.py), so a flow adds a stage's shards up the same
way for every stage, and `outcome(name, cfg, total)` says what the total means (warnings, or a
`StageFailed` when the stage produced nothing usable).
"""

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import polars as pl

from schemas import atomic
from schemas.config import FactoryConfig
from schemas.errors import InputError
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, empty, read_table, write_table
from students.backends import identity, opened, shared
from tasks import extract, fingerprints, grade, select, verify
from tasks.audit import GRADERS, audit, summary
from tasks.caption import REMOTE, caption_outcome, caption_shard
from tasks.result import ShardResult
from tasks.sample import sample_outcome, sample_shard, teacher_dir
from tasks.select import select_shard
from tasks.verify import verify_shard

Files = dict[str, tuple[Path, str]]  # name -> (parquet file, its table)
MAKES = {"problems": "ingest", "captions": "caption", "samples": "sample", "verdicts": "verify"}  # table -> stage


@dataclass(frozen=True)
class ShardStage:
    reads: Callable[[FactoryConfig, DataDir, str], Files]
    writes: Callable[[FactoryConfig, DataDir, str], Files]
    compute: Callable[..., tuple[dict[str, pl.DataFrame], ShardResult]]  # (cfg, data, item, frames, backend)
    settings: Callable[[FactoryConfig], object]  # what the outputs depend on beside the inputs and `code`
    backend: Callable[[FactoryConfig], object | None] = lambda cfg: None
    code: tuple[ModuleType, ...] = ()
    skips: bool = False
    optional: tuple[str, ...] = ()  # inputs that may be missing (read as empty)
    # warnings about the total (given the identity of the stage's backend); may raise
    outcome: Callable[[FactoryConfig, ShardResult, str], list[str]] = lambda cfg, total, teacher: []


def problems_file(data: DataDir, shard: str) -> tuple[Path, str]:
    return data.table("problems") / f"{shard}.parquet", "problems"


def of_samples(data: DataDir, sample_file: str, table: str) -> tuple[Path, str]:
    """A per-samples-file table (samples/<teacher>/<shard> mirrors into verdicts/, selected/)."""
    return data.table(table) / f"{sample_file}.parquet", table


def caption_compute(cfg, data, shard, frames, captioner):
    df, stats = caption_shard(cfg.caption, frames["problems"], captioner, data.image, desc=f"captioning {shard}")
    return {"captions": df}, ShardResult.asked(stats, captioner is None or captioner.price is not None, rows=df.height)


def sample_compute(cfg, data, shard, frames, teacher):
    captions = dict(zip(frames["captions"]["problem_id"], frames["captions"]["caption"], strict=True)) \
        if cfg.sample.captions else {}  # the picture alone (sample.images)
    result = sample_shard(cfg.sample, frames["problems"], captions, teacher, desc=f"sampling {shard}",
                          image_path=data.image, uncaptioned=cfg.caption.captioner == "none" or not cfg.sample.captions)
    return {"samples": result.samples, "rejects": pl.DataFrame(result.rejected, schema=SCHEMAS["rejects"])}, \
        ShardResult.asked(result.stats, teacher.price is not None, rows=result.samples.height, requests=result.requests,
                          rejects=result.rejects)


def sample_writes(cfg, data, shard) -> Files:
    teacher = teacher_dir(identity(cfg.sample))
    return {"samples": (data.table("samples") / teacher / f"{shard}.parquet", "samples"),
            "rejects": (data.table("rejects") / f"sample-{teacher}" / f"{shard}.parquet", "rejects")}


def verify_compute(cfg, data, item, frames, judge):
    df = verify_shard(cfg.verify, frames["samples"], frames["problems"], judge)
    return {"verdicts": df}, ShardResult(rows=df.height)


def select_compute(cfg, data, item, frames, backend):
    df = select_shard(cfg.select.policy, frames["samples"], frames["verdicts"], cfg.select.max_tokens,
                      cfg.select.finished_only)
    return {"selected": df}, ShardResult(rows=df.height)


SHARD_STAGES = {
    "caption": ShardStage(
        reads=lambda cfg, data, s: {"problems": problems_file(data, s)},
        writes=lambda cfg, data, s: {"captions": (data.table("captions") / cfg.caption.captioner / f"{s}.parquet",
                                                  "captions")},
        compute=caption_compute, settings=lambda cfg: cfg.caption,
        backend=lambda cfg: cfg.caption if cfg.caption.captioner in REMOTE else None, outcome=caption_outcome),
    "sample": ShardStage(
        reads=lambda cfg, data, s: {"problems": problems_file(data, s), "captions": (
            data.table("captions") / cfg.caption.captioner / f"{s}.parquet", "captions")},
        writes=sample_writes, compute=sample_compute, settings=lambda cfg: cfg.sample,
        backend=lambda cfg: cfg.sample, optional=("captions",),  # no captions: image problems are rejected
        outcome=sample_outcome),
    "verify": ShardStage(
        reads=lambda cfg, data, f: {"samples": of_samples(data, f, "samples"),
                                    "problems": problems_file(data, f.split("/", 1)[1])},
        writes=lambda cfg, data, f: {"verdicts": of_samples(data, f, "verdicts")},
        compute=verify_compute, settings=lambda cfg: cfg.verify, backend=lambda cfg: cfg.verify.judge,
        code=(verify, extract, grade), skips=True),
    "select": ShardStage(
        reads=lambda cfg, data, f: {"samples": of_samples(data, f, "samples"),
                                    "verdicts": of_samples(data, f, "verdicts")},
        writes=lambda cfg, data, f: {"selected": of_samples(data, f, "selected")},
        compute=select_compute, settings=lambda cfg: cfg.select, code=(select,), skips=True),
}


def run_shard(name: str, cfg: FactoryConfig, data: DataDir, item: str, scope: str = "") -> ShardResult:
    """Stage `name` on one shard (or samples file), as `SHARD_STAGES` declares it; returns what it did
    (a skipped shard: its rows and `skipped`). Its backend is the process's for `scope` (`shared`)."""
    stage = SHARD_STAGES[name]
    reads, writes = stage.reads(cfg, data, item), stage.writes(cfg, data, item)
    for key, (path, table) in reads.items():
        if not path.exists() and key not in stage.optional:
            raise InputError(f"{path} is missing: run `distillery {MAKES.get(table, table)}` first")
    outputs = [path for path, _ in writes.values()]
    fp = fingerprints.fingerprint(stage.settings(cfg), [p for p, _ in reads.values()] +
                                  [Path(m.__file__) for m in stage.code]) if stage.skips else None
    if fp and fingerprints.unchanged(outputs, fp):
        return ShardResult(rows=sum(rows_in(p) for p in outputs), skipped=True)
    frames = {key: read_table(path, table) if path.exists() else empty(table) for key, (path, table) in reads.items()}
    frames_out, result = stage.compute(cfg, data, item, frames, shared(stage.backend(cfg), cfg, data, scope))
    for key, (path, table) in writes.items():
        write_table(frames_out[key], path, table)
    if fp:
        fingerprints.record(outputs, fp)
    return result


def rows_in(path: Path) -> int:
    return pl.scan_parquet(path).select(pl.len()).collect().item()


def outcome(name: str, cfg: FactoryConfig, total: ShardResult) -> list[str]:
    """What stage `name`'s total over its shards means: warnings to log; raises `StageFailed` when the
    stage produced nothing usable."""
    section = {"caption": cfg.caption, "sample": cfg.sample}.get(name)
    return SHARD_STAGES[name].outcome(cfg, total, section and identity(section))


def run_audit(cfg: FactoryConfig, data: DataDir) -> dict:
    """verify --audit (tasks/audit.py) over every samples file (the judge, verify.judge, opened here):
    data/reports/verify-audit/audit.parquet and audit.md."""
    with opened(cfg.verify.judge, cfg, data) if cfg.verify.judge else nullcontext() as judge:
        frames = [audit(pl.read_parquet(data.table("samples") / f"{f}.parquet"), data.problems_for(f), cfg.verify,
                        judge) for f in data.sample_files()]
    df = pl.concat(frames) if frames else empty("audit")
    out = data.table("reports") / "verify-audit"
    write_table(df, out / "audit.parquet", "audit")
    atomic.write_text(out / "audit.md", summary(df))
    return {"samples": df.height, "report": str(out / "audit.md"),
            "accuracy": {g: df[g].mean() for g in GRADERS if df[g].null_count() < df.height}}
