"""verify, select and arms skip what they computed before from the same inputs and settings,
and compute again when either changes (or the record of it is gone)."""

import polars as pl
from fake_servers import FakeServer

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from students.backends import arms_teacher, close_backends
from students.runner import run_shard
from tasks.arms import run_arms
from tasks.fingerprints import sidecar
from tasks.ingest import ingest


def test_unchanged_inputs_are_skipped_and_any_change_recomputes(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-skip-123456789")
    data = DataDir(tmp_path / "data")
    with FakeServer("openai") as server:
        cfg = FactoryConfig.model_validate({
            "data_dir": str(data.root), "ingest": {"source": "synthetic", "n_problems": 30, "shard_size": 10},
            "sample": {"teacher": "openai", "model": "fake", "k": 2,
                       "endpoint": {"base_urls": [server.url], "api_key_env": "FAKE_KEY"}}})
        ingest(cfg.ingest, data)
        for shard in data.shards():
            run_shard("caption", cfg, data, shard)
            run_shard("sample", cfg, data, shard)
        close_backends()
    files = data.sample_files()
    first = [run_shard("verify", cfg, data, f) for f in files]
    assert not any(d.skipped for d in first)
    verdicts = pl.read_parquet(data.table("verdicts") / f"{files[0]}.parquet")
    again = [run_shard("verify", cfg, data, f) for f in files]
    assert all(d.skipped for d in again) and [d.rows for d in again] == [d.rows for d in first]
    assert [run_shard("select", cfg, data, f).skipped for f in files] == [False] * len(files)
    assert [run_shard("select", cfg, data, f).skipped for f in files] == [True] * len(files)
    assert run_arms(cfg, data, arms_teacher(cfg))["unchanged"] is False
    rows = run_arms(cfg, data, arms_teacher(cfg))
    assert rows["unchanged"] is True and rows["rows"]["raw"] > 0

    # a setting of the stage changes: every file again
    looser = cfg.model_copy(update={"verify": cfg.verify.model_copy(update={"rel_tol": 0.5})})
    assert not any(run_shard("verify", looser, data, f).skipped for f in files)
    # one input changes: that file alone, and the selections downstream of it
    samples = data.table("samples") / f"{files[0]}.parquet"
    pl.read_parquet(samples).head(3).write_parquet(samples)
    assert [run_shard("verify", looser, data, f).skipped for f in files] == [False] + [True] * (len(files) - 1)
    assert pl.read_parquet(data.table("verdicts") / f"{files[0]}.parquet").height == 3 < verdicts.height
    assert run_shard("select", cfg, data, files[0]).skipped is False
    # the record is gone (a run killed between output and record): computed again
    sidecar(data.table("verdicts") / f"{files[1]}.parquet").unlink()
    assert run_shard("verify", looser, data, files[1]).skipped is False
    # arms: a changed selection, or another arm list
    assert run_arms(cfg, data, arms_teacher(cfg))["unchanged"] is False
    assert run_arms(cfg.model_copy(update={"arms": cfg.arms.model_copy(update={"arms": ["raw"]})}), data,
                    arms_teacher(cfg))[
        "unchanged"] is False
