"""ScienceQA, from the original release layout or from a Hugging Face dataset.

Directory layout (the lupantech/ScienceQA release), `path` pointing at its parent:
    scienceqa/problems.json     {pid: {question, choices, answer, hint, image, lecture, solution, ...}}
    scienceqa/pid_splits.json   {"train": [pid, ...], "val": [...], "test": [...]}
    captions.json               {"captions": {pid: caption}}   (optional)
    scienceqa/images/<split>/<pid>/image.png                    (optional)
Hugging Face: `derek-thomas/ScienceQA` (hub id, or a copy saved with `save_to_disk`), columns
image, question, choices, answer, hint, task, grade, subject, topic, category, skill, lecture, solution.
"""

import io
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from schemas.errors import InputError
from tasks.readers import read_json
from tasks.sources import Record, Reject

HUB_ID = "derek-thomas/ScienceQA"
TEXTS = ("hint", "lecture", "solution", "subject", "topic", "category", "grade")
HF_SPLITS = {"train": "train", "validation": "val", "val": "val", "test": "test"}


def to_record(source_id: str, split: str, row: Mapping[str, Any], image: bytes | None,
              caption: str | None) -> Record | Reject:
    """One ScienceQA row (either layout) as a Record; a Reject naming the first bad field."""
    choices, answer = row.get("choices"), row.get("answer")
    if not isinstance(row.get("question"), str):
        return Reject(source_id, "malformed_row", f"question is {type(row.get('question')).__name__}")
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        return Reject(source_id, "malformed_row", f"choices is {type(choices).__name__}, expected a list of strings")
    if not isinstance(answer, int) or isinstance(answer, bool):
        return Reject(source_id, "malformed_row", f"answer is {answer!r}, expected an option index")
    if not 0 <= answer < len(choices):
        return Reject(source_id, "answer_index_out_of_range", f"answer {answer} with {len(choices)} choices")
    wrong = next((k for k in TEXTS if row.get(k) is not None and not isinstance(row.get(k), str | int | float)), None)
    if wrong:  # a struct or a list where text belongs: never its repr as the text
        return Reject(source_id, "bad_shape", f"{wrong} is {type(row[wrong]).__name__}, expected text")
    text = lambda key: str(row.get(key) or "")  # noqa: E731  (None and missing both become "")
    return Record(
        source_id=source_id, split=split, question=row["question"], choices=choices,
        answer=choices[answer], answer_index=answer, answer_type="multiple_choice",
        hint=text("hint"), lecture=text("lecture"), solution=text("solution"), caption=caption or None,
        image=image, subject=text("subject"), topic=text("topic"), category=text("category"), grade=text("grade"),
    )


class ScienceQADirectory:
    """The original release layout on disk."""

    name = "scienceqa"

    def __init__(self, path: str | Path):
        root = Path(path)
        self.qa = root / "scienceqa" if (root / "scienceqa" / "problems.json").exists() else root
        if not (self.qa / "problems.json").exists():
            raise InputError(f"{path}: no scienceqa/problems.json (original ScienceQA layout expected)")
        self.root = self.qa.parent if self.qa != root else root

    def captions(self) -> dict[str, str]:
        for f in (self.root / "captions.json", self.qa / "captions.json"):
            if f.exists():
                data = read_json(f)
                data = data.get("captions", data) if isinstance(data, dict) else None
                if not isinstance(data, dict):
                    raise InputError(f"{f}: expected {{\"captions\": {{pid: caption}}}} or {{pid: caption}}")
                return {k: v for k, v in data.items() if isinstance(v, str)}
        return {}

    def splits(self, problems: dict) -> tuple[dict[str, str], dict[str, list[str]]]:
        """pid -> split, and the pids that pid_splits.json lists in more than one split (-> those splits)."""
        f = self.qa / "pid_splits.json"
        if not f.exists():
            return {pid: str(p.get("split", "")) for pid, p in problems.items() if isinstance(p, dict)}, {}
        pid_splits = read_json(f)
        if not isinstance(pid_splits, dict) or not all(isinstance(v, list) for v in pid_splits.values()):
            raise InputError(f"{f}: expected {{split: [pid, ...]}}")
        listed: dict[str, list[str]] = {}
        for split in ("train", "val", "test"):
            for pid in dict.fromkeys(str(p) for p in pid_splits.get(split, [])):
                listed.setdefault(pid, []).append(split)
        return {pid: s[0] for pid, s in listed.items()}, {pid: s for pid, s in listed.items() if len(s) > 1}

    def image(self, pid: str, split: str, name) -> tuple[bytes | None, Reject | None]:
        """The row's image, or why it cannot be read (the caller keeps the row when a caption stands in)."""
        if not name:
            return None, None
        if not isinstance(name, str):
            return None, Reject(pid, "bad_shape", f"image is {type(name).__name__}, expected a file name")
        for f in (self.qa / "images" / split / pid / name, self.root / "images" / split / pid / name):
            if f.is_file():
                try:
                    return f.read_bytes(), None
                except OSError as e:
                    return None, Reject(pid, "image_unreadable", f"{f}: {e.strerror or e}")
            if os.path.lexists(f):  # a directory, a broken link or a link loop
                why = "a directory" if f.is_dir() else "a broken or looping link"
                return None, Reject(pid, "image_unreadable", f"{f} is {why}, not an image file")
        return None, Reject(pid, "image_missing", f"image {name} not found under images/{split}/{pid}/")

    def records(self) -> Iterator[Record | Reject]:
        problems = read_json(self.qa / "problems.json")
        if not isinstance(problems, dict):
            raise InputError(f"{self.qa / 'problems.json'}: expected {{pid: problem}}, got {type(problems).__name__}")
        captions, (splits, conflicts) = self.captions(), self.splits(problems)
        listed = (self.qa / "pid_splits.json").exists()
        for pid in sorted(set(splits) - set(problems)):  # the split file names a problem the release lacks
            yield Reject(pid, "missing_problem", f"listed in pid_splits.json ({splits[pid]}) but not in problems.json")
        for pid, row in problems.items():
            try:
                yield self.record(pid, row, splits, conflicts, listed, captions.get(pid))
            except (ValueError, TypeError, OverflowError) as e:  # a value of a shape no check foresaw: this row only
                yield Reject(pid, "malformed_row", f"{type(e).__name__}: {e}"[:300])

    def record(self, pid: str, row, splits: dict, conflicts: dict, listed: bool, caption) -> Record | Reject:
        if not isinstance(row, dict):
            return Reject(pid, "malformed_row", f"expected an object, got {type(row).__name__}")
        if pid in conflicts:
            return Reject(pid, "split_conflict", f"pid_splits.json lists it in {' and '.join(conflicts[pid])}")
        if listed and pid not in splits and not row.get("split"):
            return Reject(pid, "unknown_split", "in problems.json but in no split of pid_splits.json")
        split = splits.get(pid, str(row.get("split", "")))
        image, unreadable = self.image(pid, split, row.get("image"))
        caption = caption if isinstance(caption, str) else None
        if unreadable and not caption:  # nothing a teacher could see: never sent
            return unreadable
        return to_record(pid, split, row, image, caption)


class ScienceQAHF:
    """A Hugging Face dataset with ScienceQA's columns: a `save_to_disk` copy or a hub id."""

    name = "scienceqa"

    def __init__(self, path: str = HUB_ID):
        self.path = path

    def load(self):
        import datasets

        if Path(self.path).exists():
            return datasets.load_from_disk(self.path)
        return datasets.load_dataset(self.path)

    def records(self) -> Iterator[Record | Reject]:
        data = self.load()
        parts = data.items() if hasattr(data, "items") else [("train", data)]
        for hf_split, part in parts:
            split = HF_SPLITS.get(hf_split, hf_split)
            for i, row in enumerate(part):
                yield to_record(f"{split}-{i}", split, row, encode_image(row.get("image")), row.get("caption"))


def encode_image(image) -> bytes | None:
    """PIL image (what `datasets` decodes) or {'bytes': ...} dict to encoded bytes."""
    if image is None:
        return None
    if isinstance(image, dict):
        return image.get("bytes")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def scienceqa_source(path: str | None) -> ScienceQADirectory | ScienceQAHF:
    """A directory with problems.json is the release layout, one with dataset_dict.json or
    dataset_info.json a `save_to_disk` copy; a path that is not local is a hub id."""
    if not path:
        return ScienceQAHF(HUB_ID)
    p = Path(path).expanduser()
    if any((p / f).exists() for f in ("problems.json", "scienceqa/problems.json")):
        return ScienceQADirectory(p)
    if any((p / f).exists() for f in ("dataset_dict.json", "dataset_info.json")):
        return ScienceQAHF(str(p))
    if p.exists() or p.is_absolute() or path.startswith((".", "~")):
        raise InputError(f"{path}: neither a ScienceQA directory (scienceqa/problems.json) "
                                "nor a dataset saved with datasets' save_to_disk")
    return ScienceQAHF(path)
