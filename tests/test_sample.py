"""sample with the real `local` teacher on a tiny Llama, through the SQLite cache."""

import polars as pl

from schemas.config import SampleConfig
from schemas.paths import DataDir
from schemas.tables import SCHEMAS
from tasks.ingest import ingest
from tasks.sample import sample_shard
from tasks.teachers.local import LocalTeacher
from teacher_cache import CachedTeacher, CacheStore


def problems(tmp_path) -> pl.DataFrame:
    from schemas.config import SyntheticIngest

    data = DataDir(tmp_path / "data")
    ingest(SyntheticIngest(n_problems=10), data)
    return pl.read_parquet(data.table("problems") / "synthetic" / "synthetic-00000.parquet")


def test_local_teacher_k_paths_per_variant_and_cached_rerun(tmp_path, tiny_model):
    probs = problems(tmp_path)
    cfg = SampleConfig(model=tiny_model, k=2, max_new_tokens=12, batch_size=5)
    db = tmp_path / "cache.sqlite"
    teacher = LocalTeacher(tiny_model, batch_size=5)
    df, stats = sample_shard(cfg, probs, {}, CachedTeacher(teacher, CacheStore(db)))
    n_train = probs.filter(pl.col("split") == "train").height
    assert df.height == n_train * 2 * 2 and df["sample_id"].is_unique().all() and stats.hits == 0
    assert stats.new == df.select("request_key", "sample_index").n_unique()
    assert df.schema == pl.Schema(SCHEMAS["samples"])
    assert df.group_by("problem_id", "variant").len()["len"].to_list() == [2] * (n_train * 2)
    assert (df["completion_tokens"] <= 12).all() and (df["prompt_tokens"] > 0).all()
    assert df.filter(pl.col("variant") == "lecture")["prompt"].str.contains("Lecture:").all()

    fresh = LocalTeacher(tiny_model, batch_size=5)
    again, stats = sample_shard(cfg, probs, {}, CachedTeacher(fresh, CacheStore(db)))
    assert stats.new == 0 and stats.hits == df.select("request_key", "sample_index").n_unique() and fresh._model is None  # the model was never loaded
    assert again.sort("sample_id").equals(df.sort("sample_id"))
