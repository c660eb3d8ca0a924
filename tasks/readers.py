"""Reading the files users hand in: one `InputError` naming the file and what is wrong with it
(never its contents: a binary file must not end up in a terminal or a log)."""

import json
from pathlib import Path
from typing import Any

import polars as pl

from schemas.errors import InputError


def existing_file(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


def read_text(path: str | Path) -> str:
    path = existing_file(path)
    try:
        return path.read_text(encoding="utf-8-sig")  # a leading BOM (Windows editors) is not part of the text
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a UTF-8 text file (byte {e.start} cannot be decoded; a binary file?)") from None


def read_json(path: str | Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to read") from None


def read_parquet(path: str | Path) -> pl.DataFrame:
    path = existing_file(path)
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise InputError(f"{path}: not a readable parquet file ({first_line(e)})") from None


def read_csv(path: str | Path) -> pl.DataFrame:
    path = existing_file(path)
    try:
        return pl.read_csv(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a readable CSV file ({first_line(e)})") from None


def first_line(e: BaseException, limit: int = 200) -> str:
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return line if len(line) <= limit else line[:limit] + "..."


def clean_text(value: str) -> str:
    """A string that parquet can store: lone surrogates and other unencodable code points escaped."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def read_rows(path: Path) -> tuple[list[dict], list[tuple[int, str]]]:
    """The file's rows, and (line number, error) for jsonl lines that are not JSON objects."""
    path = existing_file(path)
    if path.suffix == ".parquet":
        return read_parquet(path).to_dicts(), []
    if path.suffix == ".json":
        rows = read_json(path)
        if isinstance(rows, dict):  # {id: row}, as MathVista's output files are: the key is the id
            rows = [{"pid": k} | v if isinstance(v, dict) else {"pid": k, "response": v} for k, v in rows.items()]
        if not isinstance(rows, list):
            raise InputError(f"{path}: expected a JSON list of objects, or an object of id: row (or use .jsonl)")
        return [r for r in rows if isinstance(r, dict)], [(n, f"item {n}: not a JSON object") for n, r in
                                                          enumerate(rows, 1) if not isinstance(r, dict)]
    if path.suffix not in (".jsonl", ".ndjson"):
        raise InputError(f"{path}: unknown file type {path.suffix or '(none)'}: expected .jsonl, .json or .parquet")
    rows, bad = [], []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append((n, f"line {n}: {e.msg}"))
            continue
        (rows.append(row) if isinstance(row, dict) else bad.append((n, f"line {n}: not a JSON object")))
    return rows, bad
