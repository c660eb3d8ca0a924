"""ingest: synthetic and ScienceQA (release layout and a saved `datasets` copy) into problems."""

import hashlib

import polars as pl
import pytest
from scienceqa_fixture import CAPTIONS, ROWS, write_hf_dataset, write_release_layout

from schemas.config import ScienceQAIngest, SyntheticIngest
from schemas.errors import InputError
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, read_table
from tasks.ingest import ingest, stable_id


def test_synthetic_ingest_stores_images_once_by_hash(tmp_path):
    data = DataDir(tmp_path)
    result = ingest(SyntheticIngest(n_problems=25, shard_size=10), data)
    assert result.problems == 25 and len(result.shards) == 3
    problems = read_table(data.table("problems"), "problems")
    assert problems.height == 25 and problems.schema == pl.Schema(SCHEMAS["problems"])
    for sha in problems["image_sha"]:
        assert hashlib.sha256(data.image(sha).read_bytes()).hexdigest() == sha
    ingest(SyntheticIngest(n_problems=5, shard_size=10), data)  # a smaller re-ingest leaves no stale shard
    assert read_table(data.table("problems"), "problems").height == 5


def test_scienceqa_release_layout(tmp_path):
    data = DataDir(tmp_path / "data")
    result = ingest(ScienceQAIngest(path=str(write_release_layout(tmp_path / "sqa"))), data)
    assert result.problems == 3
    assert result.rejects == {"answer_index_out_of_range": 1, "malformed_row": 1}
    problems = read_table(data.table("problems"), "problems").sort("source_id")
    by_pid = {r["source_id"]: r for r in problems.iter_rows(named=True)}
    for pid in ("1", "2", "3"):
        row, src = by_pid[pid], ROWS[pid]
        assert row["problem_id"] == stable_id("scienceqa", pid)
        assert (row["lecture"], row["hint"], row["solution"], row["split"]) == (src["lecture"], src["hint"], src["solution"], src["split"])
        assert row["answer"] == src["choices"][src["answer"]] and row["answer_index"] == src["answer"]
        assert row["caption"] == CAPTIONS.get(pid)
    assert by_pid["1"]["image_sha"] and by_pid["2"]["image_sha"] is None
    rejects = read_table(data.table("rejects"), "rejects")
    assert set(rejects["source_id"]) == {"4", "5"} and all(rejects["detail"])


def test_scienceqa_saved_hf_dataset(tmp_path):
    data = DataDir(tmp_path / "data")
    result = ingest(ScienceQAIngest(path=str(write_hf_dataset(tmp_path / "hf"))), data)
    assert result.problems == 3 and result.rejects == {"answer_index_out_of_range": 1}
    problems = read_table(data.table("problems"), "problems")
    assert sorted(problems["split"]) == ["test", "train", "val"]
    val = problems.filter(pl.col("split") == "val").row(0, named=True)
    assert val["hint"] == ROWS["2"]["hint"] and val["lecture"] == ROWS["2"]["lecture"]
    assert val["image_sha"] is None
    assert problems.filter(pl.col("split") == "train")["image_sha"][0] is not None


def test_missing_scienceqa_directory_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="problems.json"):
        ingest(ScienceQAIngest(path=str(tmp_path / "nope")), DataDir(tmp_path))
