"""One bad row never aborts a source, and a problem nobody can see is never ingested (fast, in
process; the same cases run through the CLI in tests/test_bad_input_faults.py)."""

import json
import math

import polars as pl
from scienceqa_fixture import write_release_layout

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import read_table
from tasks.ingest import ingest


def run(tmp_path, ingest_cfg: dict) -> tuple[set[str], dict[str, tuple[str, str]]]:
    data = DataDir(tmp_path / "data")
    ingest(FactoryConfig.model_validate({"ingest": ingest_cfg}).ingest, data)
    ids = set(read_table(data.table("problems"), "problems")["source_id"])
    name = ingest_cfg["source"]
    rejects = read_table(data.table("rejects") / f"ingest-{name}.parquet", "rejects")
    return ids, {r["source_id"]: (r["reason"], r["detail"]) for r in rejects.iter_rows(named=True)}


def sqa(tmp_path):
    root = write_release_layout(tmp_path / "sqa")
    captions = json.loads((root / "captions.json").read_text())
    captions["captions"].pop("1")  # pid 1's image has nothing to stand in for it
    (root / "captions.json").write_text(json.dumps(captions))
    return root, root / "scienceqa" / "images" / "train" / "1" / "image.png"


def test_scienceqa_images_that_cannot_be_read(tmp_path):
    for n, (break_it, reason) in enumerate([(lambda p: p.unlink(), "image_missing"),
                                            (lambda p: (p.unlink(), p.mkdir()), "image_unreadable"),
                                            (lambda p: (p.unlink(), p.symlink_to(p)), "image_unreadable")]):
        root, img = sqa(tmp_path / str(n))
        break_it(img)
        ids, rejects = run(tmp_path / str(n), {"source": "scienceqa", "path": str(root)})
        assert rejects["1"][0] == reason and "1" not in ids and {"2", "3"} <= ids


def test_scienceqa_split_conflict_and_struct_hint(tmp_path):
    root, _ = sqa(tmp_path)
    splits = json.loads((root / "scienceqa" / "pid_splits.json").read_text())
    splits["test"].append("1")
    (root / "scienceqa" / "pid_splits.json").write_text(json.dumps(splits))
    problems = json.loads((root / "scienceqa" / "problems.json").read_text())
    problems["2"]["hint"] = {"text": "a struct"}
    (root / "scienceqa" / "problems.json").write_text(json.dumps(problems))
    ids, rejects = run(tmp_path, {"source": "scienceqa", "path": str(root)})
    assert rejects["1"] == ("split_conflict", "pid_splits.json lists it in train and test")
    assert rejects["2"][0] == "bad_shape" and "hint" in rejects["2"][1] and ids == {"3"}


GOOD = {"id": "good", "question": "Which colour is the sky?", "choices": ["red", "blue"], "answer": "blue"}


def test_files_rows_in_the_wrong_shape_are_rejects_naming_the_column(tmp_path):
    rows = [GOOD, GOOD | {"id": "s", "choices": {"a": "red", "b": "blue"}, "answer": "a"},
            GOOD | {"id": "h", "hint": {"text": "x"}}, GOOD | {"id": "l", "choices": [["red"], ["blue"]]},
            {"id": "p", "question": "e?", "answer": "2.72", "precision": "two"},
            {"id": "q", "question": "pi?", "answer": "3.14", "precision": 2}, GOOD | {"id": "i", "answer_index": 0.5}]
    path = tmp_path / "train.jsonl"
    path.write_text("\ufeff" + "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")  # a BOM too
    ids, rejects = run(tmp_path, {"source": "files", "path": str(path), "columns": {"hint": "hint"}})
    assert ids == {"good", "q"}
    assert {k: v[0] for k, v in rejects.items()} == {"s": "bad_shape", "h": "bad_shape", "l": "bad_shape",
                                                      "p": "bad_value", "i": "answer_not_in_choices"}
    assert "choices" in rejects["s"][1] and "hint" in rejects["h"][1] and "precision" in rejects["p"][1]


def test_a_nan_answer_index_in_parquet_is_one_reject(tmp_path):
    pl.DataFrame({"id": ["a", "b"], "question": ["Sky?", "Grass?"], "choices": [["red", "blue"], ["green", "pink"]],
                  "answer_index": [1.0, math.nan]}).write_parquet(tmp_path / "train.parquet")
    ids, rejects = run(tmp_path, {"source": "files", "path": str(tmp_path / "train.parquet")})
    assert ids == {"a"} and rejects["b"][0] == "bad_value" and "answer_index" in rejects["b"][1]
