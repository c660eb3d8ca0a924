"""A real Prefect server on loopback: deploy `factory` and `import-traces` from prefect.yaml and
run them with --watch, as a user does from the command line or the UI."""

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
        run = deployment_run("factory/factory", {"config": config}, env)
        problems = pl.read_parquet(tmp_path / "data" / "problems" / "**" / "*.parquet").filter(pl.col("split") == "train")
        traces = tmp_path / "traces.jsonl"
        traces.write_text("\n".join(json.dumps({"id": s, "response": "<think>Count.</think>The answer is (A)."})
                                    for s in problems["source_id"]))
        assert "import-traces/import-traces" in prefect(["--no-prompt", "deploy", "--name", "import-traces"], env)
        imported = deployment_run("import-traces/import-traces", {
            "file": str(traces), "teacher": "earlier-run", "source": "synthetic", "config": config}, env)
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
    assert imported.returncode == 0 and "COMPLETED" in imported.stdout.upper(), imported.stdout[-3000:]
    earlier = pl.read_parquet(data / "samples" / "earlier-run" / "**" / "*.parquet")
    assert earlier.height == problems.height and set(earlier["reasoning"]) == {"Count."}


def deployment_run(name: str, params: dict, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([PREFECT, "deployment", "run", name, "--params", json.dumps(params), "--watch",
                           "--watch-timeout", "540"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
