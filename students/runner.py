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

Backends: the threads runner shares one per process (a local model is loaded once) until
`close_backends` at the stage's end; a dask or ray worker opens its own per task, with its share
(1 / runner.workers) of the endpoint's rpm, tpm and concurrency.
"""

import json
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import polars as pl

from schemas.config import FactoryConfig
from schemas.errors import InputError
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, empty, read_table, write_table
from students.backends import identity_of, opened
from tasks import extract, fingerprints, grade, select, verify
from tasks.caption import REMOTE, caption_shard
from tasks.sample import sample_shard, teacher_dir
from tasks.select import select_shard
from tasks.stages import Done, rows_in
from tasks.verify import verify_shard
from teacher_cache import CachedTeacher

Files = dict[str, tuple[Path, str]]  # name -> (parquet file, its table)
MAKES = {"problems": "ingest", "captions": "caption", "samples": "sample", "verdicts": "verify"}  # table -> stage


@dataclass(frozen=True)
class ShardStage:
    reads: Callable[[FactoryConfig, DataDir, str], Files]
    writes: Callable[[FactoryConfig, DataDir, str], Files]
    compute: Callable[..., tuple[dict[str, pl.DataFrame], object]]  # (cfg, data, item, frames, backend)
    settings: Callable[[FactoryConfig], object]  # what the outputs depend on beside the inputs and `code`
    backend: Callable[[FactoryConfig], object | None] = lambda cfg: None
    code: tuple[ModuleType, ...] = ()
    skips: bool = False
    optional: tuple[str, ...] = ()  # inputs that may be missing (read as empty)


def problems_file(data: DataDir, shard: str) -> tuple[Path, str]:
    return data.table("problems") / f"{shard}.parquet", "problems"


def of_samples(data: DataDir, sample_file: str, table: str) -> tuple[Path, str]:
    """A per-samples-file table (samples/<teacher>/<shard> mirrors into verdicts/, selected/)."""
    return data.table(table) / f"{sample_file}.parquet", table


def caption_compute(cfg, data, shard, frames, captioner):
    df, stats = caption_shard(cfg.caption, frames["problems"], captioner, data.image, desc=f"captioning {shard}")
    return {"captions": df}, stats


def sample_compute(cfg, data, shard, frames, teacher):
    captions = dict(zip(frames["captions"]["problem_id"], frames["captions"]["caption"], strict=True)) \
        if cfg.sample.captions else {}  # the picture alone (sample.images)
    result = sample_shard(cfg.sample, frames["problems"], captions, teacher, desc=f"sampling {shard}",
                          image_path=data.image, uncaptioned=cfg.caption.captioner == "none" or not cfg.sample.captions)
    return {"samples": result.samples, "rejects": pl.DataFrame(result.rejected, schema=SCHEMAS["rejects"])}, result


def sample_writes(cfg, data, shard) -> Files:
    teacher = teacher_dir(identity_of(cfg.sample))
    return {"samples": (data.table("samples") / teacher / f"{shard}.parquet", "samples"),
            "rejects": (data.table("rejects") / f"sample-{teacher}" / f"{shard}.parquet", "rejects")}


def verify_compute(cfg, data, item, frames, judge):
    df = verify_shard(cfg.verify, frames["samples"], frames["problems"], judge)
    return {"verdicts": df}, Done(df.height)


def select_compute(cfg, data, item, frames, backend):
    df = select_shard(cfg.select.policy, frames["samples"], frames["verdicts"], cfg.select.max_tokens,
                      cfg.select.finished_only)
    return {"selected": df}, Done(df.height)


SHARD_STAGES = {
    "caption": ShardStage(
        reads=lambda cfg, data, s: {"problems": problems_file(data, s)},
        writes=lambda cfg, data, s: {"captions": (data.table("captions") / cfg.caption.captioner / f"{s}.parquet",
                                                  "captions")},
        compute=caption_compute, settings=lambda cfg: cfg.caption,
        backend=lambda cfg: cfg.caption if cfg.caption.captioner in REMOTE else None),
    "sample": ShardStage(
        reads=lambda cfg, data, s: {"problems": problems_file(data, s), "captions": (
            data.table("captions") / cfg.caption.captioner / f"{s}.parquet", "captions")},
        writes=sample_writes, compute=sample_compute, settings=lambda cfg: cfg.sample,
        backend=lambda cfg: cfg.sample, optional=("captions",)),  # no captions: image problems are rejected
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


def run_shard(name: str, cfg: FactoryConfig, data: DataDir, item: str):
    """Stage `name` on one shard (or samples file), as `SHARD_STAGES` declares it; returns its result
    (`Done(rows, skipped=True)` for a skipped shard)."""
    stage = SHARD_STAGES[name]
    reads, writes = stage.reads(cfg, data, item), stage.writes(cfg, data, item)
    for key, (path, table) in reads.items():
        if not path.exists() and key not in stage.optional:
            raise InputError(f"{path} is missing: run `distillery {MAKES.get(table, table)}` first")
    outputs = [path for path, _ in writes.values()]
    fp = fingerprints.fingerprint(stage.settings(cfg), [p for p, _ in reads.values()] +
                                  [Path(m.__file__) for m in stage.code]) if stage.skips else None
    if fp and fingerprints.unchanged(outputs, fp):
        return Done(sum(rows_in(p) for p in outputs), skipped=True)
    frames = {key: read_table(path, table) if path.exists() else empty(table) for key, (path, table) in reads.items()}
    with backend(stage.backend(cfg), cfg, data) as b:
        frames_out, result = stage.compute(cfg, data, item, frames, b)
    for key, (path, table) in writes.items():
        write_table(frames_out[key], path, table)
    if fp:
        fingerprints.record(outputs, fp)
    return result


def divided(section, shares: int):
    """The section with its endpoint's limits split among `shares` workers, so that together they keep them."""
    endpoint = getattr(section, "endpoint", None)
    if shares == 1 or endpoint is None:
        return section
    limits = {"concurrency": max(1, math.ceil(endpoint.concurrency / shares)),
              "rpm": endpoint.rpm and endpoint.rpm / shares, "tpm": endpoint.tpm and endpoint.tpm / shares}
    return section.model_copy(update={"endpoint": endpoint.model_copy(update=limits)})


SHARED: dict[str, tuple[ExitStack, CachedTeacher]] = {}  # threads runner: this process's open backends
_shared_lock = threading.Lock()


@contextmanager
def backend(section, cfg: FactoryConfig, data: DataDir) -> Iterator[CachedTeacher | None]:
    """The backend a shard task uses, opened in the process that runs the task (never passed between
    tasks). Threads share one per process until `close_backends`; a dask or ray worker opens its own
    per task, with its share of the endpoint's limits."""
    if section is None:
        yield None
        return
    section = divided(section, cfg.runner.shares())
    if cfg.runner.kind != "threads":
        with opened(section, cfg, data) as teacher:
            yield teacher
        return
    key = json.dumps([section.model_dump(mode="json"), str(data.root), cfg.model_dump(mode="json")["prices"]])
    with _shared_lock:
        if key not in SHARED:
            stack = ExitStack()
            SHARED[key] = (stack, stack.enter_context(opened(section, cfg, data)))
    yield SHARED[key][1]


def close_backends() -> None:
    """Closes the backends the threads runner opened in this process (a stage's end)."""
    with _shared_lock:
        for stack, _ in SHARED.values():
            stack.close()
        SHARED.clear()
