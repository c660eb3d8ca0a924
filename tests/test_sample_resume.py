"""A sampling run killed with SIGKILL halfway and started again: exactly k samples per problem,
no duplicate rows, and no request that had succeeded (and was cached) asked again."""

import os
import signal
import subprocess
import time

import polars as pl
import pytest
import yaml
from e2e import CLI, ROOT, prefect_env, run_cli
from fake_servers import FakeServer

from schemas.config import FactoryConfig, SyntheticIngest
from schemas.paths import DataDir
from students.runner import run_shard
from tasks.ingest import ingest
from teacher_cache import CacheStore

K, CONCURRENCY = 2, 4


@pytest.mark.slow
def test_sigkill_halfway_then_rerun_finishes_without_paying_twice(tmp_path):
    data = DataDir(tmp_path / "data")
    ingest(SyntheticIngest(n_problems=120, shard_size=40), data)
    for shard in data.shards():  # the shipped captions make each prompt distinct
        run_shard("caption", FactoryConfig(), data, shard)
    n_requests = 120 * 2 * K  # every split, two prompt variants, k paths, one request each
    with FakeServer("openai", latency=0.05) as server:
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(yaml.safe_dump({
            "data_dir": str(data.root), "arms": {"arms": ["raw"]},
            "sample": {"teacher": "openai", "model": "fake-r1", "k": K, "splits": ["train", "val", "test"],
                       "endpoint": {"base_urls": [server.url], "concurrency": CONCURRENCY, "use_n": False,
                                    "api_key_env": "FAKE_KEY"}}}))
        env = prefect_env(tmp_path / "prefect", FAKE_KEY="sk-fake-1234567890")
        proc = subprocess.Popen([CLI, "sample", "--config", str(cfg)], env=env, cwd=ROOT, start_new_session=True,
                                stdout=open(tmp_path / "first.log", "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while sum(server.successes.values()) < n_requests // 2:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and anything it started
        proc.wait()
        time.sleep(0.5)  # let the server finish answering what was in flight (to no one)
        answered_before = sum(server.successes.values())
        cached_before = CacheStore(data.teacher_cache).count()
        assert 0 < cached_before < n_requests

        result, log = run_cli(["sample", "--config", str(cfg)], env)

    lost_in_flight = answered_before - cached_before  # answered by the server, never committed
    assert 0 <= lost_in_flight <= CONCURRENCY
    repeated = sum(n - 1 for n in server.successes.values())
    assert repeated <= lost_in_flight  # only requests in flight at the kill were asked again
    samples = pl.read_parquet(data.table("samples") / "**" / "*.parquet")
    assert samples.height == n_requests and samples["sample_id"].is_unique().all()
    distinct = samples.select("request_key", "sample_index").n_unique()  # problems worded alike share one
    assert len(server.successes) == distinct
    assert result["failed"] == 0 and result["new"] == distinct - cached_before  # asked only what was missing
    assert samples.group_by("problem_id", "variant").len()["len"].unique().to_list() == [K]
    assert "sk-fake-1234567890" not in log
