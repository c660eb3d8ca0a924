"""The data stages' shard tasks on a Dask cluster (prefect-dask) through the real CLI: the same
tables as the threads runner, an endpoint's rate limit kept by two workers together (server-side
arrival times), and a worker SIGKILLed mid-stage: exactly k samples per problem after a re-run, and
no answer asked again but what the dead worker had in flight."""

import os
import signal
import subprocess
import time

import polars as pl
import psutil
import pytest
from e2e import CLI, ROOT, prefect_server, run_cli, tiny_config
from fake_servers import FakeServer

pytestmark = pytest.mark.slow
KEY = "sk-runner-0123456789"
DATA_TABLES = ["problems", "captions", "samples", "verdicts", "selected", "arms"]


@pytest.fixture(scope="module")
def api_env(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect"), OPENAI_API_KEY=KEY) as env:
        yield env


def remote_sample(url: str, **endpoint) -> dict:
    return {"teacher": "openai", "model": "fake-r1", "k": 2, "variants": ["plain"],
            "endpoint": {"base_urls": [url], **endpoint}}


def table(data, name: str) -> pl.DataFrame:
    df = pl.read_parquet(data / name / "**" / "*.parquet")
    df = df.drop([c for c in ("latency_s",) if c in df.columns])  # wall time differs run to run
    return df.sort(df.columns)


def test_dask_and_ray_runners_write_the_tables_the_threads_runner_writes(tmp_path, tiny_model, api_env):
    with FakeServer("openai") as server:
        runs, logs = {}, {}
        for kind in ("threads", "dask", "ray"):
            cfg = tiny_config(tmp_path / f"{kind}.yaml", tiny_model, tmp_path / kind, run=kind,
                              ingest={"n_problems": 20, "shard_size": 5}, sample=remote_sample(server.url),
                              arms={"arms": ["raw", "teacher_cot"]}, train={"methods": ["lora"]},
                              evaluate={"baseline": False}, runner={"kind": kind, "workers": 2})
            runs[kind], logs[kind] = run_cli(["run", "--config", str(cfg)], api_env)
    assert "sample-shards" in logs["dask"] and "distributed.scheduler" in logs["dask"]  # in the dask subflow
    assert "sample-shards" in logs["ray"] and "ray" in logs["ray"].lower()
    for kind in ("dask", "ray"):  # one cluster for the run's shard stages, not one per stage
        assert logs[kind].count(f"a local {kind} cluster of 2 workers") == 1, logs[kind][-3000:]
        assert "Creating a new Dask cluster" not in logs[kind] and "Creating a local Ray instance" not in logs[kind]
    for kind in ("dask", "ray"):
        for name in DATA_TABLES:
            assert table(tmp_path / kind, name).equals(table(tmp_path / "threads", name)), (kind, name)
        assert runs["threads"]["sample"]["new"] == runs[kind]["sample"]["new"] > 0


def arrivals_within(times: list[float], window: float) -> int:
    """The most requests that arrived within any `window` seconds (brute force over the start points)."""
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u - t < window) for i, t in enumerate(times))


def test_two_dask_workers_keep_the_endpoints_rpm_together_and_ask_nothing_twice(tmp_path, api_env):
    rpm, window = 120, 5.0
    with FakeServer("openai") as server:
        cfg = tiny_config(tmp_path / "rpm.yaml", "embedded", tmp_path / "data", ingest={"n_problems": 60, "shard_size": 10},
                          sample=remote_sample(server.url, rpm=rpm, concurrency=8), runner={"kind": "dask", "workers": 2})
        for stage in ("ingest", "caption"):
            run_cli([stage, "--config", str(cfg)], api_env)
        result, _ = run_cli(["sample", "--config", str(cfg)], api_env)
    assert result["new"] == 2 * len(server.times) and len(server.times) >= 30  # k=2 paths per request (n=2)
    burst = rpm / 60  # the limiter lets a second's share through at once
    # + each worker's burst: arrivals bunch by network jitter; undivided limits would give about twice the rate
    assert arrivals_within(server.times, window) <= rpm / 60 * window + 2 * burst
    assert max(server.attempts.values()) == 1 and not server.repeated_successes()


def test_a_dask_worker_killed_mid_stage_repeats_at_most_what_it_had_in_flight(tmp_path, api_env):
    with FakeServer("openai", latency=0.3) as server:
        cfg = tiny_config(tmp_path / "kill.yaml", "embedded", tmp_path / "data",
                          ingest={"n_problems": 60, "shard_size": 10},
                          sample=remote_sample(server.url, concurrency=2), runner={"kind": "dask", "workers": 2})
        for stage in ("ingest", "caption"):
            run_cli([stage, "--config", str(cfg)], api_env)
        proc = subprocess.Popen([CLI, "sample", "--config", str(cfg)], env=api_env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while len(server.times) < 8 and time.monotonic() < deadline:
                time.sleep(0.1)
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                       if "spawn_main" in " ".join(p.cmdline()) or "forkserver" in " ".join(p.cmdline())]
            assert workers, "no dask worker process found"
            os.kill(workers[0].pid, signal.SIGKILL)
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        run_cli(["sample", "--config", str(cfg.parent / "kill.yaml")], api_env)  # the re-run finishes the rest
    samples = table(tmp_path / "data", "samples")
    train = table(tmp_path / "data", "problems").filter(pl.col("split") == "train").height
    per_problem = samples.group_by("problem_id").agg(pl.col("sample_index").sort())
    assert per_problem.height == train and per_problem["sample_index"].to_list() == [[0, 1]] * train
    # Only what the killed worker had in flight can be asked again: its one request (concurrency 2 shared
    # by 2 workers) of k=2 paths, answered by the server to a process that was gone.
    repeated = sum(n - 1 for n in server.successes.values())
    assert repeated <= 1 * 2, server.repeated_successes()


def test_a_dask_worker_reads_the_api_key_from_a_prefect_secret_block(tmp_path, api_env):
    """`endpoint.api_key_secret` under `runner: dask`: the worker that opens the teacher loads the block
    from the Prefect server itself; the key reaches the server and no log line, table or cache."""
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from tasks.ingest import ingest

    secret_key = "sk-from-a-secret-block-98765"
    with temporary_settings({PREFECT_API_URL: api_env["PREFECT_API_URL"]}):
        Secret(value=secret_key).save("runner-test-key", overwrite=True)
    env = {k: v for k, v in api_env.items() if k != "OPENAI_API_KEY"}  # only the block holds a key
    with FakeServer("openai") as server:
        cfg = tiny_config(tmp_path / "secret.yaml", "embedded", tmp_path / "data", caption={"captioner": "none"},
                          ingest={"n_problems": 8, "shard_size": 4},
                          sample=remote_sample(server.url, api_key_secret="runner-test-key"),
                          runner={"kind": "dask", "workers": 2})
        ingest(FactoryConfig.from_yaml(cfg).ingest, DataDir(tmp_path / "data"))  # no CLI run needed for the problems
        result, log = run_cli(["sample", "--config", str(cfg)], env)
    assert result["new"] > 0 and server.headers
    assert {h["Authorization"] for h in server.headers} == {f"Bearer {secret_key}"}
    assert secret_key not in log
    for f in (tmp_path / "data").rglob("*"):
        if f.is_file():
            assert secret_key.encode() not in f.read_bytes(), f
