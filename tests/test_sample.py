"""sample with the real `local` teacher on a tiny Llama, through the SQLite cache."""

import polars as pl

from schemas.config import SampleConfig
from schemas.paths import DataDir
from schemas.tables import SCHEMAS
from students.teachers import LocalTeacher
from tasks.ingest import ingest
from tasks.sample import sample_shard
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
    captions = dict(zip(probs["problem_id"], probs["caption"], strict=True))  # as the dataset captioner gives them
    result = sample_shard(cfg, probs, captions, CachedTeacher(teacher, CacheStore(db)))
    df = result.samples
    stats = result.stats
    n_train = probs.filter(pl.col("split") == "train").height
    assert df.height == n_train * 2 * 2 and df["sample_id"].is_unique().all() and stats.hits == 0
    assert stats.new == df.select("request_key", "sample_index").n_unique()
    assert df.schema == pl.Schema(SCHEMAS["samples"])
    assert df.group_by("problem_id", "variant").len()["len"].to_list() == [2] * (n_train * 2)
    assert (df["completion_tokens"] <= 12).all() and (df["prompt_tokens"] > 0).all()
    assert df.filter(pl.col("variant") == "lecture")["prompt"].str.contains("Lecture:").all()
    assert df["prompt"].str.contains("Image: ").all()

    fresh = LocalTeacher(tiny_model, batch_size=5)
    result = sample_shard(cfg, probs, captions, CachedTeacher(fresh, CacheStore(db)))
    again = result.samples
    stats = result.stats
    assert stats.new == 0 and stats.hits == df.select("request_key", "sample_index").n_unique() and fresh._model is None  # the model was never loaded
    assert again.sort("sample_id").equals(df.sort("sample_id"))


def test_image_problems_without_a_caption_and_over_long_prompts_are_not_sent(tmp_path):
    """Nothing reaches a teacher that cannot answer it: an image problem with no caption (the
    caption stage not run) and a prompt over max_prompt_tokens are rejects, with their reasons."""
    from tasks.sample import build_requests

    probs = problems(tmp_path)
    train = probs.filter(pl.col("split") == "train")
    captions = dict(zip(train["problem_id"][1:], train["caption"][1:], strict=True))  # the first has none
    long_id = train["problem_id"][2]
    probs = probs.with_columns(pl.when(pl.col("problem_id") == long_id).then(pl.lit("word " * 2000))
                               .otherwise(pl.col("question")).alias("question"))
    items, rejects = build_requests(SampleConfig(k=2, variants=["plain"], max_prompt_tokens=1000), probs, captions)
    sent = {p["problem_id"] for p, _, _ in items}
    assert sent == set(train["problem_id"][1:]) - {long_id} and len(items) == 2 * len(sent)
    assert {(r["source_id"], r["reason"]) for r in rejects} == {(train["problem_id"][0], "no_caption"),
                                                                (long_id, "prompt_too_long")}
    assert all("Image: " in r.messages[0][1] for _, _, r in items)
    sent_anyway, _ = build_requests(SampleConfig(k=1, variants=["plain"]), probs, {}, uncaptioned=True)
    assert len(sent_anyway) == train.height  # the `none` captioner: chosen, so sent as they are
