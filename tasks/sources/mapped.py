"""`MappedSource`: the `hf`, `files` and preset sources (mathvista, aokvqa, clevr_cogent, sat,
cvbench) as one class: rows from a hub dataset, a `save_to_disk` copy, data files, or
MathVista's GitHub release layout, mapped to problems (tasks/sources/tables.py).

MathVista's release layout is a directory holding `data/testmini.json` (and perhaps
`data/test.json`), `data/texts/captions_bard.json`, `data/texts/ocrs_easyocr.json` and the
images under `data/images/` (or `images/`): the Bard caption, with the OCR'd text after it,
becomes the problem's caption (what the `dataset` captioner hands a text-only teacher).
"""

import ast
from collections.abc import Iterator
from pathlib import Path

from schemas.config import DatasetIngest
from schemas.errors import InputError
from tasks.readers import read_json
from tasks.sources import Record, Reject
from tasks.sources.presets import PRESETS, Preset
from tasks.sources.tables import (
    FIELDS,
    SPLIT_NAMES,
    data_files,
    file_split,
    hf_splits,
    mapped,
    read_file,
    to_record,
)


def release_dir(path: str | None) -> Path | None:
    """The MathVista release directory `path` names, if it is one."""
    if not path:
        return None
    p = Path(path).expanduser()
    for data in (p / "data", p):
        if (data / "testmini.json").is_file() or (data / "test.json").is_file():
            return data
    return None


def ocr_text(raw: str) -> str:
    """EasyOCR's "[([[x, y], ...], 'text', confidence), ...]" as the texts it found."""
    try:
        found = ast.literal_eval(raw) if raw else []
    except (ValueError, SyntaxError):
        return ""
    return ", ".join(str(t[1]) for t in found if isinstance(t, tuple | list) and len(t) > 1 and str(t[1]).strip())


def release_captions(data: Path, with_ocr: bool) -> dict[str, str]:
    def texts(name: str) -> dict:
        f = data / "texts" / name
        found = read_json(f) if f.is_file() else {}
        return found.get("texts", {}) if isinstance(found, dict) else {}

    captions, ocrs = texts("captions_bard.json"), texts("ocrs_easyocr.json") if with_ocr else {}
    out = {}
    for pid in set(captions) | set(ocrs):
        words = ocr_text(ocrs.get(pid, ""))
        parts = [captions.get(pid, "").strip()] + ([f"Text in the image: {words}"] if words else [])
        out[pid] = "\n".join(p for p in parts if p)
    return out


class MappedSource:
    """The rows a `DatasetIngest` section names, mapped over its preset's columns and splits."""

    def __init__(self, cfg: DatasetIngest):
        self.name = cfg.source
        self.preset: Preset | None = PRESETS.get(cfg.source)
        self.path = cfg.path or (self.preset.hub_id if self.preset else None)
        if not self.path:
            raise InputError(f"source {cfg.source!r} needs a path: a hub id, a save_to_disk directory or data files")
        base = self.preset.columns if self.preset else {f: f for f in FIELDS}
        self.columns = base | {k: v for k, v in cfg.columns.model_dump().items() if v}
        self.splits = (self.preset.splits if self.preset else dict(SPLIT_NAMES)) | dict(cfg.splits)
        self.split, self.ocr = cfg.split, cfg.ocr
        self.images_dir = Path(cfg.images_dir).expanduser() if cfg.images_dir else None
        self.config_name = cfg.name or (self.preset.name if self.preset else None)

    def our_split(self, theirs: str | None, row: dict) -> str | None:
        """Our split for a row: its own split column, else its file's or dataset split, mapped."""
        column = self.columns.get("split")
        named = row.get(column) if column and isinstance(row, dict) else None
        for candidate in (named, theirs):
            if candidate is not None and str(candidate) in self.splits:
                return self.splits[str(candidate)]
        if self.preset and theirs is not None:
            return None  # a split the preset does not read
        return self.split or (str(named or theirs) if (named or theirs) else None)

    def records(self) -> Iterator[Record | Reject]:
        if self.name == "mathvista" and (data := release_dir(self.path)):
            yield from self.release(data)
            return
        p = Path(self.path).expanduser()
        if p.exists() and not any((p / f).exists() for f in ("dataset_dict.json", "dataset_info.json", "state.json")):
            for f in data_files(p):
                yield from self.rows(file_split(f), read_file(f), self.images_dir or f.parent, f.stem)
            return
        for theirs, rows in hf_splits(self.path, self.config_name):
            yield from self.rows(theirs, rows, self.images_dir, theirs)

    def release(self, data: Path) -> Iterator[Record | Reject]:
        captions = release_captions(data, self.ocr)
        root = self.images_dir or next((d for d in (data, data.parent) if (d / "images").is_dir()), data)
        for name in ("testmini", "test"):
            f = data / f"{name}.json"
            if f.is_file():
                rows = (r | {"caption": captions.get(str(r.get("pid") or r.get("_id")))} if isinstance(r, dict) else r
                        for r in read_file(f))
                yield from self.rows(name, rows, root, name)

    def rows(self, theirs: str | None, rows, root: Path | None, label: str) -> Iterator[Record | Reject]:
        fix = self.preset.fix if self.preset else None
        for i, row in enumerate(rows):
            if isinstance(row, Reject):
                yield row
                continue
            if not isinstance(row, dict):
                yield Reject(f"{label}-{i}", "malformed_row", f"expected an object, got {type(row).__name__}")
                continue
            split = self.our_split(theirs, row)
            if split is None and self.preset:
                continue
            m = mapped(row, self.columns, fix)
            source_id = str(m["id"]) if m["id"] is not None else f"{label}-{i}"
            if split is None:
                yield Reject(source_id, "unknown_split", "no split for this row (set `split` or `splits`)")
                continue
            try:
                yield to_record(m, source_id, split, root)
            except (ValueError, TypeError, OverflowError) as e:  # a value of a shape no check foresaw: this row only
                yield Reject(source_id, "malformed_row", f"{type(e).__name__}: {e}"[:300])
