"""A real Prefect server on loopback: every deployment of prefect.yaml, the nightly schedule, the
factory run on its named config (with its artifacts), a stage deployment and import-traces, run
with --watch as a user does from the command line or the UI."""

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from e2e import ROOT, prefect_env, tiny_config

from tasks.teachers.vllm import free_port

PREFECT = str(Path(sys.executable).parent / "prefect")
STAGES = ["ingest", "caption", "sample", "verify", "select", "arms", "export", "train", "evaluate", "deploy", "report"]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
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


def prefect(args: list[str], env: dict, timeout: int = 180) -> str:
    proc = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"prefect {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def api(env: dict, path: str, body: dict | None = None):
    req = urllib.request.Request(env["PREFECT_API_URL"] + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture
def server(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = prefect_env(tmp_path / "prefect", PREFECT_API_URL=url, PREFECT_WORKER_QUERY_SECONDS="2",
                      PREFECT_WORKER_PREFETCH_SECONDS="2", PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="3")
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url, proc)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def scheduled_runs(env: dict, deployment: str, timeout: float = 120) -> list[dict]:
    """The deployment's SCHEDULED flow runs, once the scheduler service has made some."""
    dep = api(env, f"/deployments/name/{deployment}")
    deadline = time.monotonic() + timeout
    while True:
        runs = api(env, "/flow_runs/filter", {"deployments": {"id": {"any_": [dep["id"]]}},
                                              "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}})
        if runs or time.monotonic() > deadline:
            return runs
        time.sleep(2)


def run_id(out: str) -> str:
    return re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)


@pytest.mark.slow
def test_deployments_schedule_and_runs(server, tmp_path, tiny_model):
    env = server
    prefect(["work-pool", "create", "distillery", "--type", "process"], env)
    out = prefect(["--no-prompt", "deploy", "--all"], env, timeout=300)
    for name in ["factory", "distill", "import-traces", *STAGES]:
        assert f"'{name}/{name}'" in out or f"{name}/{name}" in out, name
    named = tiny_config(tmp_path / "nightly.yaml", tiny_model, tmp_path / "data",
                        arms={"arms": ["raw", "answer_only"]}, train={"methods": ["lora"]})
    prefect(["--no-prompt", "deploy", "--name", "factory", "--params", json.dumps({"config_file": str(named)})], env)

    runs = scheduled_runs(env, "factory/factory")  # the nightly schedule, made by the scheduler service
    assert runs, "the nightly schedule created no scheduled run"
    assert all(r["parameters"] == {"config_file": str(named)} for r in runs)
    assert all(r["expected_start_time"].endswith(("T02:00:00Z", "T02:00:00+00:00")) for r in runs)

    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "distillery"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run = deployment_run("factory/factory", None, env)  # the deployment's own parameters: its named config
        verify = deployment_run("verify/verify", {"config_file": str(named)}, env)
        problems = pl.read_parquet(tmp_path / "data" / "problems" / "**" / "*.parquet").filter(pl.col("split") == "train")
        traces = tmp_path / "traces.jsonl"
        traces.write_text("\n".join(json.dumps({"id": s, "response": "<think>Count.</think>The answer is (A)."})
                                    for s in problems["source_id"]))
        imported = deployment_run("import-traces/import-traces", {
            "file": str(traces), "teacher": "earlier-run", "source": "synthetic", "config_file": str(named)}, env)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    for proc in (run, verify, imported):
        assert proc.returncode == 0 and "COMPLETED" in proc.stdout.upper(), proc.stdout[-3000:] + proc.stderr[-3000:]
    data = tmp_path / "data"
    assert pl.read_parquet(data / "samples" / "**" / "*.parquet").height > 0
    assert (data / "reports" / "e2e" / "report.md").exists()
    assert (data / "students" / "e2e" / "raw-lora" / "adapter_model.safetensors").exists()
    earlier = pl.read_parquet(data / "samples" / "earlier-run" / "**" / "*.parquet")
    assert earlier.height == problems.height and set(earlier["reasoning"]) == {"Count."}

    artifacts = api(env, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id(run.stdout)]}}})
    by_key = {a["key"]: a for a in artifacts}
    assert {"report-e2e", "students-e2e", "hypotheses-e2e", "report-file-e2e", "data-dir-e2e"} <= set(by_key)
    assert by_key["students-e2e"]["type"] == "table"
    report_uri = (data / "reports" / "e2e" / "report.md").resolve().as_uri()
    assert f"({report_uri})" in by_key["report-file-e2e"]["data"]  # Prefect stores a link as markdown
    assert f"({data.resolve().as_uri()})" in by_key["data-dir-e2e"]["data"]
    progress = [a for a in artifacts if a["type"] == "progress"]
    assert progress and progress[0]["data"] == 100.0  # the factory's own progress, finished
    report = next(a for a in artifacts if a["key"] == "report-e2e")
    assert report["data"] == (data / "reports" / "e2e" / "report.md").read_text()


def deployment_run(name: str, params: dict | None, env: dict) -> subprocess.CompletedProcess:
    extra = ["--params", json.dumps(params)] if params is not None else []
    return subprocess.run([PREFECT, "deployment", "run", name, *extra, "--watch", "--watch-timeout", "540"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
