"""ingest: a source's records -> `problems` shards (+ images by content hash, + `rejects`).

    distillery ingest --source scienceqa --path DIR
"""

import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field

import polars as pl
from PIL import Image, UnidentifiedImageError

from schemas import atomic
from schemas.config import IngestConfig
from schemas.errors import InputError, StageFailed
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, write_table
from tasks import fingerprints
from tasks.readers import clean_text
from tasks.sources import Record, Reject
from tasks.sources.mapped import MappedSource
from tasks.sources.scienceqa import scienceqa_source
from tasks.sources.synthetic import SyntheticSource

SOURCES = {
    "synthetic": SyntheticSource,
    "scienceqa": lambda cfg: scienceqa_source(cfg.path),
}
SPLITS = ("train", "val", "test")


DERIVED = ("captions", "samples", "verdicts", "selected", "rejects")  # tables with a file per problems shard


@dataclass
class IngestResult:
    problems: int = 0
    rejects: Counter = field(default_factory=Counter)  # reason -> count
    shards: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # files of shards an earlier, larger ingest left


def stable_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def dhash(img: Image.Image) -> str:
    """64-bit difference hash (hex): brightness steps of a 9x8 greyscale thumbnail. A re-encoded
    or resized copy of a picture gets the same hash, or one a few bits away."""
    small = img.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    px = list(small.getdata())  # row-major, 8 rows of 9
    bits = [px[r * 9 + c] > px[r * 9 + c + 1] for r in range(8) for c in range(8)]
    return f"{sum(1 << i for i, b in enumerate(bits) if b):016x}"


def store_image(data: DataDir, raw: bytes) -> tuple[str, str]:
    """Decode any image format, store it once as PNG under its sha256; return (sha256, dhash)."""
    img = Image.open(io.BytesIO(raw))
    img.load()
    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    png = buf.getvalue()
    sha = hashlib.sha256(png).hexdigest()
    path = data.image(sha)
    if not path.exists():
        atomic.write_bytes(path, png)
    return sha, dhash(img)


MAX_FIELD_CHARS = 1_000_000  # a longer field is a broken row, not a problem (a prompt limit applies at sample)
TEXT_FIELDS = ("source_id", "question", "answer", "hint", "lecture", "solution", "caption", "subject", "topic",
               "category", "grade", "unit", "context", "origin")


def text_reject(rec: Record) -> str | None:
    """Why a record's text cannot be stored (lone surrogates, fields too long to be real), or None."""
    fields = [(f, getattr(rec, f)) for f in TEXT_FIELDS] + [(f"choices[{i}]", c) for i, c in enumerate(rec.choices)] \
        + [(f"aliases[{i}]", a) for i, a in enumerate(rec.aliases)] + [(f"skills[{i}]", a) for i, a in enumerate(rec.skills)]
    for name, value in fields:
        if not isinstance(value, str):
            continue
        if len(value) > MAX_FIELD_CHARS:
            return f"field_too_long:{name} has {len(value)} characters (at most {MAX_FIELD_CHARS})"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"bad_text:{name} has an invalid character at {e.start} ({e.reason})"
    return None


def problem_reject(rec: Record) -> str | None:
    """Why a record cannot be used, or None."""
    if reason := text_reject(rec):
        return reason
    if rec.split not in SPLITS:
        return f"unknown_split:{rec.split or 'missing'}"
    if not rec.question.strip() and not rec.image:
        return "empty_question"
    if not str(rec.answer).strip():
        return "missing_answer"
    if rec.answer_type == "multiple_choice" and len(rec.choices) < 2:
        return "too_few_choices"
    return None


def to_row(source: str, rec: Record, image_sha: str | None, phash: str | None = None) -> dict:
    return dict(
        problem_id=stable_id(source, rec.source_id), source=source, source_id=rec.source_id,
        split=rec.split, question=rec.question, choices=rec.choices, answer=str(rec.answer),
        answer_index=rec.answer_index, answer_type=rec.answer_type, hint=rec.hint, lecture=rec.lecture,
        solution=rec.solution, caption=rec.caption, image_sha=image_sha, subject=rec.subject,
        topic=rec.topic, category=rec.category, grade=rec.grade, precision=rec.precision, aliases=rec.aliases,
        unit=rec.unit, context=rec.context, skills=rec.skills, origin=rec.origin, image_phash=phash,
    )


def ingest(cfg: IngestConfig, data: DataDir) -> IngestResult:
    source = SOURCES.get(cfg.source, MappedSource)(cfg)
    rows, rejects, per_split = [], [], Counter()
    for item in source.records():
        if isinstance(item, Reject):
            rejects.append(dict(stage="ingest", source=source.name, source_id=clean_text(str(item.source_id)),
                                reason=item.reason, detail=clean_text(item.detail)))
            continue
        reason = problem_reject(item)
        sha = phash = None
        if reason is None and item.image:
            try:
                sha, phash = store_image(data, item.image)
            except (UnidentifiedImageError, OSError, ValueError) as e:
                if not item.caption:  # unreadable and nothing stands in for it
                    reason = f"bad_image:{type(e).__name__}"
        if reason:
            rejects.append(dict(stage="ingest", source=source.name, source_id=clean_text(item.source_id),
                                reason=reason.split(":")[0], detail=clean_text(reason)))
            continue
        if cfg.limit_per_split and per_split[item.split] >= cfg.limit_per_split:
            continue
        per_split[item.split] += 1
        rows.append(to_row(source.name, item, sha, phash))
    if not rows and not rejects:
        raise InputError(f"source {source.name!r} has no rows" + (f" at {cfg.path}" if getattr(cfg, "path", None) else ""))
    if not rows:  # the rejects are written, the problems an earlier ingest wrote are kept
        write_table(pl.DataFrame(rejects, schema=SCHEMAS["rejects"]),
                    data.table("rejects") / f"ingest-{source.name}.parquet", "rejects")
        reasons = "; ".join(f"{n} {r}" for r, n in Counter(r["reason"] for r in rejects).most_common(3))
        example = next(r["detail"] for r in rejects)
        raise StageFailed(f"every row of source {source.name!r} was rejected ({len(rejects)}): {reasons}; e.g. "
                          f"{example[:200]} (all in {data.table('rejects') / f'ingest-{source.name}.parquet'})")
    return write_ingested(data, source.name, rows, rejects, cfg.shard_size)


def remove_derived(data: DataDir, shard: str) -> list[str]:
    """The captions, samples, verdicts, selections and rejects of a shard no longer ingested (the
    teacher's answers stay in its cache: ingesting the problems again costs nothing)."""
    removed = []
    for table in DERIVED:
        for f in sorted(data.table(table).glob(f"*/{shard}.parquet")):
            f.unlink()
            fingerprints.forget(f)
            removed.append(str(f.relative_to(data.root)))
    return removed


def write_ingested(data: DataDir, source: str, rows: list[dict], rejects: list[dict], shard_size: int) -> IngestResult:
    """Shards of `shard_size` problems; shards left from an earlier, larger ingest are removed."""
    result = IngestResult(problems=len(rows), rejects=Counter(r["reason"] for r in rejects))
    out = data.table("problems") / source
    for start in range(0, len(rows), shard_size):
        name = f"{source}-{start // shard_size:05d}"
        write_table(pl.DataFrame(rows[start:start + shard_size]), out / f"{name}.parquet", "problems")
        result.shards.append(name)
    for stale in sorted(set(p.stem for p in out.glob("*.parquet")) - set(result.shards)):
        (out / f"{stale}.parquet").unlink()
        result.removed += remove_derived(data, f"{source}/{stale}")
    write_table(pl.DataFrame(rejects, schema=["stage", "source", "source_id", "reason", "detail"]),
                data.table("rejects") / f"ingest-{source}.parquet", "rejects")
    return result
