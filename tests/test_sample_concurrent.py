"""Two `distillery sample` processes on one data directory, against a counting server: every
request reaches the teacher once (claims with leases in the shared cache), and both end with the
same complete samples."""

import subprocess
import time

import polars as pl
import pytest
import yaml
from e2e import CLI, ROOT, prefect_env
from fake_servers import FakeServer

from schemas.config import FactoryConfig, SyntheticIngest
from schemas.paths import DataDir
from students.runner import run_shard
from tasks.ingest import ingest

K = 2


@pytest.mark.slow
@pytest.mark.parametrize("stagger_s", [0.0, 3.0])
def test_two_sample_processes_never_ask_the_same_request_twice(tmp_path, stagger_s):
    data = DataDir(tmp_path / "data")
    ingest(SyntheticIngest(n_problems=40, shard_size=20), data)
    for shard in data.shards():
        run_shard("caption", FactoryConfig(), data, shard)
    with FakeServer("openai", latency=0.1) as server:
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(yaml.safe_dump({
            "data_dir": str(data.root),
            "sample": {"teacher": "openai", "model": "fake-r1", "k": K, "splits": ["train", "val", "test"],
                       "endpoint": {"base_urls": [server.url], "concurrency": 4, "use_n": False,
                                    "api_key_env": "FAKE_KEY"}}}))
        procs = []
        for n in range(2):
            env = prefect_env(tmp_path / f"prefect{n}", FAKE_KEY="sk-fake-1234567890")
            procs.append(subprocess.Popen([CLI, "sample", "--config", str(cfg)], env=env, cwd=ROOT,
                                          stdout=open(tmp_path / f"p{n}.log", "w"), stderr=subprocess.STDOUT))
            time.sleep(stagger_s)
        for n, p in enumerate(procs):
            assert p.wait(timeout=600) == 0, (tmp_path / f"p{n}.log").read_text()[-3000:]
    samples = pl.read_parquet(data.table("samples") / "**" / "*.parquet")
    distinct = samples.select("request_key", "sample_index").n_unique()
    assert sum(server.attempts.values()) == len(server.successes) == distinct  # sent == distinct requests
    assert server.repeated_successes() == {}
    assert samples.group_by("problem_id", "variant").len()["len"].unique().to_list() == [K]
