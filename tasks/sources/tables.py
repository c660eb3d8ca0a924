"""Any table of problems, read through a column mapping: a Hugging Face dataset (hub id,
`save_to_disk` copy, parquet / arrow files), or jsonl / json / parquet / csv files.

A mapping names, for each problem field, the column that holds it (dots reach into structs:
`metadata.category`). Presets (tasks/sources/presets.py) supply mappings, split names and small
fixes for the datasets the research uses, so `source: mathvista` needs nothing more.

Answers: an `answer_index`, else an answer that is an option letter ("C", "(C)") or an option's
text; without choices, a number is `numeric` and anything else `free_form` (a declared
`answer_type` of integer / float wins). Images: a decoded image, {"bytes", "path"}, raw bytes,
or a path relative to `images_dir` (default: the data file's folder); a list gives its first.
A row whose image is missing or unreadable keeps its caption, or is rejected with the reason.
"""

import io
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.errors import InputError
from tasks.readers import read_csv, read_json, read_parquet, read_text
from tasks.sources import Record, Reject

FIELDS = ("id", "question", "choices", "answer", "answer_index", "image", "hint", "lecture", "solution", "aliases",
          "precision", "unit", "answer_type", "split", "subject", "topic", "grade", "category", "caption", "context",
          "skills", "origin")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test"}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NUMERIC_TYPES = {"integer", "int", "float", "number", "numeric"}


def pick(row: dict, column: str | None) -> Any:
    """The value under `column` (a dotted path into structs), or None."""
    if not column:
        return None
    value: Any = row
    for part in column.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):  # several rationales / solutions: the first that says something
        return next((str(v) for v in value if v is not None and str(v).strip()), "")
    return str(value)


def strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v is not None]


def option_letter(answer: str, n: int) -> int | None:
    """"C", "(C)", "C." as an option index, when within the n options."""
    s = answer.strip().strip("()[]. ")
    return LETTERS.index(s) if len(s) == 1 and s in LETTERS[:n] else None


def norm(s: str) -> str:
    return " ".join(s.lower().split()).strip(" .")


def answer_of(choices: list[str], answer: Any, index: Any) -> tuple[int | None, str | None]:
    """(option index, why not) for a multiple-choice row (a number `index` is finite: shape_reject saw to that)."""
    if isinstance(index, int | float) and not isinstance(index, bool):
        if index != int(index):
            return None, f"answer_index {index} is not a whole number"
        i = int(index)
        return (i, None) if 0 <= i < len(choices) else (None, f"answer_index {i} with {len(choices)} choices")
    a = text(answer)
    if not a.strip():
        return None, "no answer"
    by_text = [i for i, c in enumerate(choices) if norm(c) == norm(a)]
    if by_text:
        return by_text[0], None
    letter = option_letter(a, len(choices))
    if letter is not None:
        return letter, None
    return None, f"answer {a!r} is neither an option nor an option letter"


def image_bytes(value: Any, root: Path | None) -> tuple[bytes | None, tuple[str, str] | None]:
    """(encoded image, (reason, why) there is none) from any of the forms datasets and files use."""
    if isinstance(value, list | tuple):
        value = next((v for v in value if v is not None), None)
    if value is None:
        return None, None
    if isinstance(value, bytes | bytearray):
        return bytes(value), None
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"]), None
        value = value.get("path")
        if not value:
            return None, None
    if isinstance(value, str):
        return image_file(Path(value) if Path(value).is_absolute() else (root or Path(".")) / value)
    if hasattr(value, "save"):  # a PIL image, as datasets decodes it
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return buf.getvalue(), None
    return None, ("image_unreadable", f"image of type {type(value).__name__}")


def image_file(path: Path) -> tuple[bytes | None, tuple[str, str] | None]:
    if path.is_file():
        try:
            return path.read_bytes(), None
        except OSError as e:
            return None, ("image_unreadable", f"image file {path}: {e.strerror or e}")
    if os.path.lexists(path):  # a directory, a broken link or a link loop
        return None, ("image_unreadable", f"image {path} is {'a directory' if path.is_dir() else 'a broken or looping link'}")
    return None, ("image_missing", f"image file {path} not found")


def is_number(s: str) -> bool:
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return False


@dataclass
class Mapped:
    """One dataset row, already mapped to problem fields (each None when the row has none), and the
    column each field came from."""

    fields: dict[str, Any]
    columns: dict[str, str | None]

    def __getitem__(self, key: str) -> Any:
        return self.fields.get(key)

    def named(self, field: str) -> str:
        column = self.columns.get(field)
        return field if not column or column == field else f"{field} (column {column})"


LISTS = ("choices", "aliases", "skills")  # a list, or one string


def shape_reject(m: Mapped, source_id: str) -> Reject | None:
    """A struct where text or a list belongs, a list of structs, or a non-number where a number does."""
    for f in FIELDS:
        v = m[f]
        if f == "image" or v is None:
            continue
        if isinstance(v, dict) or (f in LISTS and isinstance(v, list | tuple) and
                                   any(isinstance(x, dict | list | tuple) for x in v)):
            return Reject(source_id, "bad_shape", f"{m.named(f)} is a {type(v).__name__} "
                          f"({str(v)[:80]}), expected {'a list of strings' if f in LISTS else 'text'}")
        if (f == "precision" and not finite_number(v)) or (f == "answer_index" and isinstance(v, float)
                                                            and not math.isfinite(v)):
            return Reject(source_id, "bad_value", f"{m.named(f)} is {v!r}, expected a number")
    return None


def finite_number(v: Any) -> bool:
    try:
        return not isinstance(v, bool) and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def to_record(m: Mapped, source_id: str, split: str, root: Path | None) -> Record | Reject:
    question = m["question"]
    if not isinstance(question, str):
        return Reject(source_id, "malformed_row", f"question is {type(question).__name__}")
    if bad := shape_reject(m, source_id):
        return bad
    choices = strings(m["choices"])
    caption = text(m["caption"]) or None
    image, missing = image_bytes(m["image"], root)
    if missing and not caption:
        return Reject(source_id, *missing)
    common = dict(source_id=source_id, split=split, question=question, hint=text(m["hint"]),
                  lecture=text(m["lecture"]), solution=text(m["solution"]), caption=caption, image=image,
                  subject=text(m["subject"]), topic=text(m["topic"]), category=text(m["category"]),
                  grade=text(m["grade"]), unit=text(m["unit"]), context=text(m["context"]),
                  skills=strings(m["skills"]), origin=text(m["origin"]))
    if choices:
        index, why = answer_of(choices, m["answer"], m["answer_index"])
        if index is None:
            return Reject(source_id, "answer_not_in_choices", why)
        return Record(**common, choices=choices, answer=choices[index], answer_index=index,
                      answer_type="multiple_choice")
    answer = text(m["answer"]).strip()
    declared = text(m["answer_type"]).lower()
    numeric = declared in NUMERIC_TYPES or (declared in ("", "numeric") and is_number(answer))
    precision = m["precision"]
    if precision is not None and (float(precision) != int(float(precision)) or float(precision) < 0):
        return Reject(source_id, "bad_value", f"{m.named('precision')} is {precision!r}, expected a whole number of decimals")
    aliases = sorted({a for a in strings(m["aliases"]) if a.strip() and norm(a) != norm(answer)})
    return Record(**common, answer=answer, answer_type="numeric" if numeric else "free_form",
                  precision=None if precision is None else int(float(precision)), aliases=aliases)


def mapped(row: dict, columns: dict[str, str | None], fix: Callable[[dict, dict], dict] | None) -> Mapped:
    fields = {f: pick(row, columns.get(f)) for f in FIELDS}
    return Mapped(fix(row, fields) if fix else fields, columns)


# -- reading ---------------------------------------------------------------------------------

FILE_TYPES = (".parquet", ".arrow", ".jsonl", ".json", ".csv")


def file_split(path: Path) -> str | None:
    """A split named by a data file (train.jsonl, test-00000-of-00001.parquet, val.csv)."""
    stem = path.name.split(".")[0].split("-")[0].lower()
    return stem if stem in SPLIT_NAMES or stem == "testmini" else None


def read_file(path: Path) -> Iterator[dict | Reject]:
    """Rows of one data file; a line that is not JSON is a reject, not the end of the file."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".csv"):
        yield from (read_parquet(path) if suffix == ".parquet" else read_csv(path)).iter_rows(named=True)
    elif suffix == ".arrow":
        import datasets

        yield from datasets.Dataset.from_file(str(path))
    elif suffix == ".jsonl":
        for n, line in enumerate(read_text(path).splitlines(), 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    yield Reject(f"{path.name}:{n}", "malformed_row", f"line {n} is not JSON: {e.msg}")
    elif suffix == ".json":
        data = read_json(path)
        if isinstance(data, dict):  # {id: row} (MathVista, ScienceQA) keeps its ids
            data = [({"_id": k} | v) if isinstance(v, dict) else v for k, v in data.items()]
        yield from data if isinstance(data, list) else []
    else:
        raise InputError(f"{path}: unknown data file type (expected one of {', '.join(FILE_TYPES)})")


def data_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in FILE_TYPES and p.is_file())
    if not files:
        raise InputError(f"{path}: no data files ({', '.join(FILE_TYPES)})")
    return files


def hf_splits(path: str, name: str | None) -> Iterator[tuple[str, Any]]:
    """(split name, rows) of a hub dataset or a `save_to_disk` copy."""
    import datasets

    p = Path(path).expanduser()
    data = datasets.load_from_disk(str(p)) if p.exists() else datasets.load_dataset(path, name)
    yield from (data.items() if hasattr(data, "items") else [("train", data)])
