"""import-traces: answers a teacher gave elsewhere (another run, another tool, a published
set of traces) stored as that teacher's samples, so they verify and select like any others.

    distillery import-traces --file r1.jsonl --teacher deepseek-r1 --source scienceqa

A file is jsonl, json (a list of objects, or an object of id: row as MathVista's output files
are) or parquet. A row names its problem by the source's
own id (`source_id`, `pid`, `custom_id`, `id`, ...) and carries the response: a string, a list
of strings (k samples in one row), a chat (`messages` / `conversations`: the last assistant
turn), or what an API returned, as OpenAI and Gemini batch jobs write it (tasks/trace_cells.py).
Optional: `reasoning` (or `reasoning_content`, `thinking`; else `<think>` tags are split off),
`completion_tokens` / `prompt_tokens` (or a `usage` object), `variant`, `sample_index`,
`finish_reason`, `model`. The samples of a (problem, variant) in the file replace that
teacher's earlier ones, so importing the same file twice changes nothing.
"""

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from schemas.config import FactoryConfig, ModelPrice
from schemas.errors import InputError, StageFailed
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, read_table, write_table
from tasks.readers import clean_text, read_rows
from tasks.sample import sample_id, teacher_dir
from tasks.teachers import share, split_think
from tasks.trace_cells import FINISH, answers_of, usage_of
from teacher_cache.prices import cost_usd, price_for

ID_COLUMNS = ("source_id", "pid", "problem_id", "question_id", "qid", "custom_id", "key", "id", "idx", "index")
RESPONSE_COLUMNS = ("response", "responses", "content", "output", "outputs", "completion", "generation",
                    "generations", "prediction", "model_output", "answer_text", "text", "messages", "conversations")
REASONING_COLUMNS = ("reasoning", "reasoning_content", "thinking", "thoughts")
VARIANTS = ("plain", "lecture")


@dataclass
class ImportResult:
    samples: int = 0
    problems: int = 0
    rejects: Counter = field(default_factory=Counter)  # reason -> count
    files: list[str] = field(default_factory=list)  # samples files written (<teacher>/<shard>)


@dataclass(frozen=True)
class Columns:
    """Which of the file's columns hold the id, the response and the reasoning."""

    id: str
    response: str
    reasoning: str | None = None


def find_columns(rows: list[dict], id_column: str | None = None, response_column: str | None = None,
                 reasoning_column: str | None = None) -> Columns:
    """The id / response / reasoning columns: the ones named, else the first known name present."""
    present = {k for r in rows[:1000] for k in r}

    def pick(named, known, what, required=True):
        if named:
            if named not in present:
                raise InputError(f"column {named!r} ({what}) is not in the file; it has {columns_list(present)}")
            return named
        hit = next((c for c in known if c in present), None)
        if hit is None and required:
            raise InputError(f"no {what} column: name it with --{what}-column (the file has "
                             f"{columns_list(present)}; known names: {', '.join(known)})")
        return hit

    return Columns(pick(id_column, ID_COLUMNS, "id"), pick(response_column, RESPONSE_COLUMNS, "response"),
                   pick(reasoning_column, REASONING_COLUMNS, "reasoning", required=False))


def columns_list(present: set) -> str:
    names = sorted(clean_text(str(c))[:60] for c in present)
    return ", ".join(names[:30]) + (f" and {len(names) - 30} more" if len(names) > 30 else "") if names else "none"


def safe_teacher(teacher: str) -> str:
    """The directory a teacher's samples go to; a name that would leave samples/ is an error."""
    name = teacher_dir(teacher)
    if not name.strip(".") or name.startswith("."):
        raise InputError(f"teacher name {teacher!r} cannot name a directory under samples/: use letters, digits, "
                         "'-', '_' or '.' (not only dots, not starting with a dot)")
    return name


def import_key(teacher: str, problem_id: str, variant: str) -> str:
    """The request key imported samples share: no request was made, so (teacher, problem, variant)."""
    return hashlib.sha256(f"import:{teacher}:{problem_id}:{variant}".encode()).hexdigest()[:32]


def problem_index(data: DataDir, source: str) -> dict[str, tuple[str, str]]:
    """source_id -> (problem_id, shard) for every ingested problem of `source`."""
    root = data.table("problems")
    out = {}
    for path in sorted((root / source).rglob("*.parquet")):
        shard = str(path.relative_to(root).with_suffix(""))
        df = read_table(path, "problems").filter(pl.col("source") == source)
        out.update({s: (p, shard) for s, p in zip(df["source_id"], df["problem_id"], strict=True)})
    if not out:
        raise InputError(f"no problems of source {source!r} under {root}: run `distillery ingest --source {source}` first")
    return out


def row_reject(row: dict, cols: Columns) -> str | None:
    """Why a row's values cannot be samples ("reason:detail"), or None."""
    cell = row.get(cols.response)
    if isinstance(cell, bool | int | float):
        return f"response_not_text:{cols.response} holds a {type(cell).__name__}, not text (the wrong column?)"
    index = row.get("sample_index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 2**31):
        return f"bad_sample_index:sample_index {clean_text(repr(index))[:40]} is not a whole number >= 0"
    for name in ("model", "finish_reason", "prompt"):
        if row.get(name) is not None and not isinstance(row[name], str):
            return f"bad_value:{name} holds a {type(row[name]).__name__}"
    if cols.reasoning and row.get(cols.reasoning) is not None and not isinstance(row[cols.reasoning], str):
        return f"bad_value:{cols.reasoning} holds a {type(row[cols.reasoning]).__name__}"
    if bad := next((f for f, v in row.items() if isinstance(v, str) and clean_text(v) != v), None):
        return f"bad_text:{clean_text(str(bad))[:60]} has an invalid character"
    return None


def id_text(value) -> str | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return None if value is None or isinstance(value, list | dict) else str(value).strip() or None


@dataclass(frozen=True)
class ImportSettings:
    """What a file's rows are stored as: the teacher's samples of the source whose ids the file
    uses; the variant and model of rows that name none; columns not found by their usual names."""

    teacher: str
    source: str
    variant: str = "plain"
    model: str | None = None
    id_column: str | None = None
    response_column: str | None = None
    reasoning_column: str | None = None

    def check(self) -> None:
        if self.variant not in VARIANTS:
            raise InputError(f"variant {self.variant!r}: expected one of {VARIANTS}")
        safe_teacher(self.teacher)


@dataclass
class Reading:
    """One file's rows on their way to samples: what it found, what it has given and refused so far."""

    settings: ImportSettings
    cols: Columns
    index: dict[str, tuple[str, str]]  # source_id -> (problem_id, shard)
    price: ModelPrice | None
    rejects: list[dict]
    per_shard: dict[str, list[dict]] = field(default_factory=dict)
    taken: Counter = field(default_factory=Counter)  # (problem, variant) -> sample indices given so far
    seen: set = field(default_factory=set)  # (problem, variant, sample index) imported

    def add(self, row: dict) -> None:
        """The row's samples to its shard's, or the row to rejects with the reason."""
        sid = id_text(row.get(self.cols.id))
        v = row.get("variant") or self.settings.variant
        reason = ("missing_id" if sid is None else "unknown_problem" if sid not in self.index else
                  "unknown_variant" if v not in VARIANTS else row_reject(row, self.cols))
        samples = [] if reason else self.samples(row, v, self.index[sid][0])
        if not reason and not samples:
            reason = "error_response" if row.get("error") else "empty_response"
        if not reason and (dup := next((s["sample_index"] for s in samples
                                        if (s["problem_id"], v, s["sample_index"]) in self.seen), None)) is not None:
            reason = f"duplicate_sample:sample_index {dup} of this problem and variant came earlier in the file"
        if reason:
            reason, _, why = reason.partition(":")
            detail = f"{self.cols.id}={clean_text(repr(row.get(self.cols.id)))[:80]} variant={clean_text(repr(v))[:40]}"
            self.rejects.append(dict(reason=reason, source_id=sid and clean_text(sid),
                                     detail=detail + (f": {why}" if why else "")))
            return
        self.seen.update((s["problem_id"], v, s["sample_index"]) for s in samples)
        self.per_shard.setdefault(self.index[sid][1], []).extend(samples)

    def samples(self, row: dict, variant: str, problem_id: str) -> list[dict]:
        """The samples one file row holds (several when its response cell holds several answers;
        the row's token counts are then shared out by length). A row's own `sample_index` wins
        when it has one answer; else indices follow those `taken` so far."""
        cell = row.get(self.cols.response)
        answers = [a for a in answers_of(cell) if a.content.strip() or (a.reasoning or "").strip()]
        prompt_total, out_total = usage_of(row, cell)
        n = len(answers)
        prompts = share(prompt_total, [1] * n) if prompt_total is not None and n > 1 else [prompt_total] * n
        outs = (share(out_total, [len(a.content) + len(a.reasoning or "") for a in answers])
                if out_total is not None and n > 1 else [out_total] * n)
        explicit = row.get("sample_index") if n == 1 and row.get("sample_index") is not None else None
        teacher, reasoning_column = self.settings.teacher, self.cols.reasoning
        model, key = str(row.get("model") or self.settings.model or teacher), import_key(teacher, problem_id, variant)
        rows = []
        for a, in_tokens, out_tokens in zip(answers, prompts, outs, strict=True):
            given = row.get(reasoning_column) if reasoning_column and n == 1 else a.reasoning
            reasoning, content = (given.strip() or None, a.content.strip()) if isinstance(given, str) else split_think(a.content)
            index = explicit if explicit is not None else self.taken[(problem_id, variant)]
            self.taken[(problem_id, variant)] += explicit is None
            finish = str(a.finish_reason or row.get("finish_reason") or "stop").lower()
            rows.append(dict(
                sample_id=sample_id(problem_id, key, index), problem_id=problem_id, teacher=teacher, model=model,
                variant=variant, sample_index=index, request_key=key,
                prompt=row.get("prompt") if isinstance(row.get("prompt"), str) else None, reasoning=reasoning,
                content=content, finish_reason=FINISH.get(finish, finish), prompt_tokens=in_tokens,
                completion_tokens=out_tokens, latency_s=None, cost_usd=cost_usd(self.price, in_tokens, out_tokens)
                if in_tokens is not None and out_tokens is not None else None,
            ))
        return rows


def import_traces(data: DataDir, file: str | Path, settings: ImportSettings,
                  price: ModelPrice | None = None) -> ImportResult:
    """Stores the file's responses as samples of `settings.teacher`, one samples file per problems
    shard; bad rows go to rejects/import-<teacher>-<file>.parquet with the reason. Columns not
    named are found by their usual names (see `find_columns`)."""
    settings.check()
    rows, bad = read_rows(Path(file))
    if not rows:
        raise InputError(f"{file}: no rows to import" + (f" ({len(bad)} lines are not JSON objects)" if bad else ""))
    cols = find_columns(rows, settings.id_column, settings.response_column, settings.reasoning_column)
    reading = Reading(settings, cols, problem_index(data, settings.source), price,
                      [dict(reason="bad_json", source_id=None, detail=d) for _, d in bad])
    for row in rows:
        reading.add(row)
    return write_reading(data, file, reading)


def write_reading(data: DataDir, file: str | Path, reading: Reading) -> ImportResult:
    """Writes the samples a file gave (merged into their shards') and its rejects; a file none of
    whose rows is usable changes no samples and fails, saying why."""
    teacher, source, rejects = reading.settings.teacher, reading.settings.source, reading.rejects
    result = ImportResult(rejects=Counter(r["reason"] for r in rejects))
    reject_file = data.table("rejects") / f"import-{teacher_dir(teacher)}-{Path(file).stem}.parquet"
    if not reading.per_shard:  # nothing to import: say why, change no samples
        write_rejects(rejects, source, reject_file)
        reasons = "; ".join(f"{n} {r}" for r, n in result.rejects.most_common(3))
        raise StageFailed(f"{file}: every row was rejected ({len(rejects)}): {reasons} (all in {reject_file})")
    for shard, new in reading.per_shard.items():
        result.files.append(write_merged(data, teacher, shard, pl.DataFrame(new, schema=SCHEMAS["samples"])))
        result.samples += len(new)
    result.problems = len({r["problem_id"] for rs in reading.per_shard.values() for r in rs})
    write_rejects(rejects, source, reject_file)
    return result


def write_rejects(rejects: list[dict], source: str, path: Path) -> None:
    write_table(pl.DataFrame([dict(stage="import-traces", source=source, **r) for r in rejects],
                             schema=SCHEMAS["rejects"]), path, "rejects")


def write_merged(data: DataDir, teacher: str, shard: str, new: pl.DataFrame) -> str:
    """Writes samples/<teacher>/<shard>: the new samples, plus earlier ones of groups the file lacks."""
    name = f"{teacher_dir(teacher)}/{shard}"
    path = data.table("samples") / f"{name}.parquet"
    old = read_table(path, "samples") if path.exists() else new.clear()
    kept = old.join(new.select("problem_id", "variant").unique(), on=["problem_id", "variant"], how="anti")
    merged = pl.concat([kept, new]).unique("sample_id", keep="last", maintain_order=True)
    write_table(merged.sort("problem_id", "variant", "sample_index"), path, "samples")
    return name


def run_import(cfg: FactoryConfig, data: DataDir, file: str, settings: ImportSettings) -> ImportResult:
    """Imports a file of existing traces as samples of `settings.teacher` (priced when its model is known)."""
    return import_traces(data, file, settings, price_for("import", settings.model or settings.teacher, cfg.prices))
