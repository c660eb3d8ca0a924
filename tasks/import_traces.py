"""import-traces: answers a teacher gave elsewhere (another run, another tool, a published
set of traces) stored as that teacher's samples, so they verify and select like any others.

    distillery import-traces --file r1.jsonl --teacher deepseek-r1 --source scienceqa

A file is jsonl, json (a list of objects) or parquet. A row names its problem by the source's
own id (`source_id`, `pid`, `id`, ...) and carries the response: a string, a list of strings
(k samples in one row), or a chat (`messages` / `conversations`: the last assistant turn).
Optional: `reasoning` (or `reasoning_content`, `thinking`; else `<think>` tags are split off),
`completion_tokens` / `prompt_tokens` (or a `usage` object), `variant`, `sample_index`,
`finish_reason`, `model`. The samples of a (problem, variant) in the file replace that
teacher's earlier ones, so importing the same file twice changes nothing.
"""

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from schemas.config import ModelPrice
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, read_table, write_table
from tasks.sample import sample_id, teacher_dir
from tasks.teachers import split_think
from tasks.teachers.prices import cost_usd

ID_COLUMNS = ("source_id", "pid", "problem_id", "question_id", "qid", "id", "idx", "index")
RESPONSE_COLUMNS = ("response", "responses", "content", "output", "outputs", "completion", "generation",
                    "generations", "prediction", "model_output", "answer_text", "text", "messages", "conversations")
REASONING_COLUMNS = ("reasoning", "reasoning_content", "thinking", "thoughts")
OUT_TOKENS = ("completion_tokens", "output_tokens", "num_output_tokens", "response_tokens")
IN_TOKENS = ("prompt_tokens", "input_tokens", "num_input_tokens")
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


def read_rows(path: Path) -> tuple[list[dict], list[tuple[int, str]]]:
    """The file's rows, and (line number, error) for jsonl lines that are not JSON objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".parquet":
        return pl.read_parquet(path).to_dicts(), []
    if path.suffix == ".json":
        rows = json.loads(path.read_text())
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a JSON list of objects (or use .jsonl)")
        return rows, []
    rows, bad = [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append((n, f"line {n}: {e.msg}"))
            continue
        (rows.append(row) if isinstance(row, dict) else bad.append((n, f"line {n}: not a JSON object")))
    return rows, bad


def find_columns(rows: list[dict], id_column: str | None = None, response_column: str | None = None,
                 reasoning_column: str | None = None) -> Columns:
    """The id / response / reasoning columns: the ones named, else the first known name present."""
    present = {k for r in rows[:1000] for k in r}

    def pick(named, known, what, required=True):
        if named:
            if named not in present:
                raise ValueError(f"column {named!r} ({what}) is not in the file; it has {sorted(present)}")
            return named
        hit = next((c for c in known if c in present), None)
        if hit is None and required:
            raise ValueError(f"no {what} column: name it with --{what}-column (the file has {sorted(present)}; "
                             f"known names: {', '.join(known)})")
        return hit

    return Columns(pick(id_column, ID_COLUMNS, "id"), pick(response_column, RESPONSE_COLUMNS, "response"),
                   pick(reasoning_column, REASONING_COLUMNS, "reasoning", required=False))


def responses_of(value) -> list[str]:
    """The response texts a cell holds: a string, a list of strings, or a chat's last assistant turn."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        said = [m.get("content", m.get("value")) for m in value
                if m.get("role", m.get("from")) in ("assistant", "gpt", "model")]
        return [said[-1]] if said and isinstance(said[-1], str) else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def first_int(row: dict, names: tuple[str, ...], usage_key: str) -> int | None:
    for name in names:
        if isinstance(row.get(name), int | float) and row[name] is not None:
            return int(row[name])
    usage = row.get("usage")
    return int(usage[usage_key]) if isinstance(usage, dict) and isinstance(usage.get(usage_key), int) else None


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
        raise ValueError(f"no problems of source {source!r} under {root}: run `distillery ingest --source {source}` first")
    return out


def sample_rows(row: dict, cols: Columns, teacher: str, model: str, variant: str, problem_id: str,
                price: ModelPrice | None, next_index) -> list[dict]:
    """The samples one file row holds (several when its response cell is a list)."""
    texts = responses_of(row.get(cols.response))
    explicit = row.get("sample_index") if len(texts) == 1 and isinstance(row.get("sample_index"), int) else None
    out = []
    for text in texts:
        given = row.get(cols.reasoning) if cols.reasoning and len(texts) == 1 else None
        reasoning, content = (given.strip() or None, text.strip()) if isinstance(given, str) else split_think(text)
        out_tokens, in_tokens = first_int(row, OUT_TOKENS, "completion_tokens"), first_int(row, IN_TOKENS, "prompt_tokens")
        index = explicit if explicit is not None else next_index()
        key = import_key(teacher, problem_id, variant)
        out.append(dict(
            sample_id=sample_id(problem_id, key, index), problem_id=problem_id, teacher=teacher, model=model,
            variant=variant, sample_index=index, request_key=key,
            prompt=row.get("prompt") if isinstance(row.get("prompt"), str) else None, reasoning=reasoning,
            content=content, finish_reason=str(row.get("finish_reason") or "stop"),
            prompt_tokens=in_tokens, completion_tokens=out_tokens, latency_s=None,
            cost_usd=cost_usd(price, in_tokens, out_tokens) if in_tokens is not None and out_tokens is not None else None,
        ))
    return out


def id_text(value) -> str | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return None if value is None or isinstance(value, list | dict) else str(value).strip() or None


def import_traces(data: DataDir, file: str | Path, teacher: str, source: str, variant: str = "plain",
                  model: str | None = None, price: ModelPrice | None = None, id_column: str | None = None,
                  response_column: str | None = None, reasoning_column: str | None = None) -> ImportResult:
    """Stores the file's responses as samples of `teacher`, one samples file per problems shard;
    bad rows go to rejects/import-<teacher>-<file>.parquet with the reason. Columns not named
    are found by their usual names (see `find_columns`)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: expected one of {VARIANTS}")
    rows, bad = read_rows(Path(file))
    if not rows:
        raise ValueError(f"{file}: no rows to import" + (f" ({len(bad)} lines are not JSON objects)" if bad else ""))
    cols = find_columns(rows, id_column, response_column, reasoning_column)
    index = problem_index(data, source)
    rejects = [dict(reason="bad_json", source_id=None, detail=d) for _, d in bad]
    per_shard: dict[str, list[dict]] = {}
    counters: Counter = Counter()  # (problem, variant) -> samples so far: the next sample_index
    for row in rows:
        sid = id_text(row.get(cols.id))
        v = row.get("variant") or variant
        reason = ("missing_id" if sid is None else "unknown_problem" if sid not in index else
                  "unknown_variant" if v not in VARIANTS else None)
        if reason is None and not any(t.strip() for t in responses_of(row.get(cols.response))):
            reason = "empty_response"
        if reason:
            rejects.append(dict(reason=reason, source_id=sid, detail=f"{cols.id}={row.get(cols.id)!r} variant={v!r}"))
            continue
        problem_id, shard = index[sid]

        def next_index(key=(problem_id, v)):
            counters[key] += 1
            return counters[key] - 1

        per_shard.setdefault(shard, []).extend(
            sample_rows(row, cols, teacher, row.get("model") or model or teacher, v, problem_id, price, next_index))
    result = ImportResult(rejects=Counter(r["reason"] for r in rejects))
    for shard, new in per_shard.items():
        result.files.append(write_merged(data, teacher, shard, pl.DataFrame(new, schema=SCHEMAS["samples"])))
        result.samples += len(new)
    result.problems = len({r["problem_id"] for rs in per_shard.values() for r in rs})
    write_table(pl.DataFrame([dict(stage="import-traces", source=source, **r) for r in rejects],
                             schema=SCHEMAS["rejects"]),
                data.table("rejects") / f"import-{teacher_dir(teacher)}-{Path(file).stem}.parquet", "rejects")
    return result


def write_merged(data: DataDir, teacher: str, shard: str, new: pl.DataFrame) -> str:
    """Writes samples/<teacher>/<shard>: the new samples, plus earlier ones of groups the file lacks."""
    name = f"{teacher_dir(teacher)}/{shard}"
    path = data.table("samples") / f"{name}.parquet"
    old = read_table(path, "samples") if path.exists() else new.clear()
    kept = old.join(new.select("problem_id", "variant").unique(), on=["problem_id", "variant"], how="anti")
    merged = pl.concat([kept, new]).unique("sample_id", keep="last", maintain_order=True)
    write_table(merged.sort("problem_id", "variant", "sample_index"), path, "samples")
    return name
