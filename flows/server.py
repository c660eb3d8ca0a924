"""The temporary Prefect server the `distillery` CLI runs its flows against when no
PREFECT_API_URL is set.

Prefect's own temporary server waits 20 s for a new database, too little on a busy 2-core
machine, and outlives a CLI that is SIGKILLed. This one is started and waited for here:
migrations may take minutes on a cold machine, telemetry and the UI are off, and the kernel
stops it when the CLI dies (PR_SET_PDEATHSIG), however the CLI dies.
"""

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tasks.teachers.vllm import free_port

STARTUP_TIMEOUT_S = float(os.environ.get("DISTILLERY_SERVER_TIMEOUT_S", 600))
SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no heartbeat to prefect.io (offline: a traceback per run)
    "PREFECT_UI_ENABLED": "false",
    "PREFECT__SERVER_EPHEMERAL": "1",  # the scheduler and other services a CLI run never needs stay off
}


class ServerError(RuntimeError):
    """The temporary server did not come up."""


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent thread exits, even by SIGKILL."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def start(log: Path) -> tuple[subprocess.Popen, str]:
    """Starts `uvicorn prefect...create_app` on a free loopback port; returns it and its API URL."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    with open(log, "wb") as out:
        # A session of its own: a terminal's Ctrl-C reaches the CLI, which stops the server when done.
        proc = subprocess.Popen(args, env=os.environ | SERVER_ENV, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}/api"


def wait_until_healthy(proc: subprocess.Popen, api_url: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise ServerError(f"the temporary Prefect server exited with code {proc.returncode}:\n{tail}")
        if healthy(api_url):
            return
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-2000:].strip()
    raise ServerError(f"the temporary Prefect server was not ready after {timeout_s:.0f} s; set "
                      "DISTILLERY_SERVER_TIMEOUT_S to wait longer, or PREFECT_API_URL to use a running server"
                      + (f". Its log ends:\n{tail}" if tail else ""))


def drain_prefect() -> None:
    """Sends the logs and events Prefect still holds, while the server is up to take them."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)
    EventsWorker.drain_all(timeout=30)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def temporary_server(timeout_s: float = STARTUP_TIMEOUT_S):
    """Sets PREFECT_API_URL to a server started for the duration of the block (none is started
    when PREFECT_API_URL is already set)."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    with tempfile.TemporaryDirectory(prefix="distillery-prefect-") as tmp:
        log = Path(tmp) / "server.log"
        print("distillery: starting a temporary Prefect server for this command (PREFECT_API_URL names your own)",
              file=sys.stderr)
        started = time.monotonic()
        proc, api_url = start(log)
        try:
            wait_until_healthy(proc, api_url, log, timeout_s)
            if time.monotonic() - started > 15:
                print(f"distillery: temporary Prefect server ready after {time.monotonic() - started:.0f} s",
                      file=sys.stderr)
            os.environ["PREFECT_API_URL"] = api_url
            os.environ["PREFECT_UI_URL"] = ""  # it serves no UI: no "View at" links to a page that is not there
            yield api_url
        finally:
            try:
                drain_prefect()
            finally:
                os.environ.pop("PREFECT_API_URL", None)
                os.environ.pop("PREFECT_UI_URL", None)
                stop(proc)
