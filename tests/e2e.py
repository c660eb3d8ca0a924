"""Helpers for end-to-end tests: tiny configs, isolated Prefect homes, the CLI as a subprocess."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "distillery")


def tiny_config(path: Path, model: str, data_dir: Path, **overrides) -> Path:
    cfg = {
        "run": "e2e", "data_dir": str(data_dir),
        "ingest": {"source": "synthetic", "n_problems": 15, "seed": 1},
        "sample": {"model": model, "k": 2, "max_new_tokens": 24, "batch_size": 8},
        "train": {"model": model, "methods": ["lora", "prompt_tuning"], "batch_size": 4},
        "evaluate": {"max_new_tokens": 16},
    }
    for section, values in overrides.items():
        cfg[section] = {**cfg.get(section, {}), **values} if isinstance(values, dict) else values
    path.write_text(yaml.safe_dump(cfg))
    return path


def prefect_env(home: Path, own_server: bool = False, **extra) -> dict:
    """The environment of a CLI run with its own PREFECT_HOME. Unless `own_server` (a test of the
    CLI's temporary server: first contact, signals, a killed CLI) or a PREFECT_API_URL in `extra`,
    it points at the session's shared server: a temporary server migrates a brand-new database
    on every command (~15 s here), which dozens of CLI runs would pay again and again."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    if not own_server and "PREFECT_API_URL" not in extra:
        env["PREFECT_API_URL"] = shared_server_url()
    return env | {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                  "PREFECT_LOGGING_LEVEL": "INFO", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"} | extra


def run_cli(args: list[str], env: dict, timeout: int = 600) -> tuple[dict, str]:
    """Runs `distillery ...`; returns the JSON it prints last and the whole log."""
    proc = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    start = proc.stdout.rindex("\n{") + 1 if "\n{" in proc.stdout else proc.stdout.index("{")
    return json.loads(proc.stdout[start:]), log


@contextmanager
def prefect_server(home: Path, **extra):
    """A Prefect server on loopback for a test module: the env that points CLI runs at it (no
    temporary server per command)."""
    from flows.server import SERVER_ENV, _die_with_parent, free_port, stop, wait_until_healthy

    env = prefect_env(home, own_server=True, **extra)
    port, log = free_port(), home / "server.log"
    home.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
                                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "error"],
                                env=env | SERVER_ENV, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)  # gone with the test process, however it ends
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_until_healthy(proc, url, log, 600)
        yield env | {"PREFECT_API_URL": url}
    finally:
        stop(proc)


_SHARED: dict = {}


def shared_server_url() -> str:
    """The API URL of one Prefect server for the whole test session, started on first use and
    stopped when the session ends."""
    if "url" not in _SHARED:
        import atexit
        import tempfile

        server = prefect_server(Path(tempfile.mkdtemp(prefix="distillery-tests-prefect-")))
        _SHARED["url"] = server.__enter__()["PREFECT_API_URL"]
        atexit.register(server.__exit__, None, None, None)
    return _SHARED["url"]
