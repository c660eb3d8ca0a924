"""A real Prefect server on loopback: deploy `factory` from prefect.yaml and run it with --watch."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest
import yaml
from e2e import ROOT, prefect_env, tiny_config

PREFECT = str(Path(sys.executable).parent / "prefect")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"prefect server at {url} not healthy after {timeout}s")


def prefect(args: list[str], env: dict, timeout: int = 120) -> str:
    proc = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"prefect {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture
def server(tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = prefect_env(tmp_path / "prefect", PREFECT_API_URL=api, PREFECT_WORKER_QUERY_SECONDS="2",
                      PREFECT_WORKER_PREFETCH_SECONDS="2")
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(api, proc)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_deploy_and_run_factory(server, tmp_path, tiny_model):
    env = server
    prefect(["work-pool", "create", "distillery", "--type", "process"], env)
    out = prefect(["--no-prompt", "deploy", "--name", "factory"], env)
    assert "factory/factory" in out
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "distillery"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        config = yaml.safe_load(tiny_config(tmp_path / "c.yaml", tiny_model, tmp_path / "data",
                                            arms={"arms": ["raw", "answer_only"]}, train={"methods": ["lora"]}).read_text())
        run = subprocess.run([PREFECT, "deployment", "run", "factory/factory", "--params", json.dumps({"config": config}),
                              "--watch", "--watch-timeout", "540"], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "COMPLETED" in run.stdout.upper()
    data = tmp_path / "data"
    assert pl.read_parquet(data / "samples" / "**" / "*.parquet").height > 0
    assert (data / "reports" / "e2e" / "report.md").exists()
    assert (data / "students" / "e2e" / "raw-lora" / "adapter_model.safetensors").exists()
    schedules = prefect(["deployment", "inspect", "factory/factory"], env)
    assert "0 2 * * *" in schedules
