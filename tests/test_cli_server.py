"""The CLI's temporary Prefect server: started and waited for on a brand-new PREFECT_HOME, gone
with the CLI however it ends, a clear message when it cannot start."""

import signal
import subprocess
import time

import psutil
import pytest
from e2e import CLI, ROOT, prefect_env


def server_child(pid: int, timeout: float = 120) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                if "prefect.server.api.server:create_app" in " ".join(child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.2)
    raise TimeoutError("no temporary Prefect server was started")


@pytest.mark.slow
def test_a_sigkilled_cli_takes_its_temporary_server_with_it(tmp_path):
    env = prefect_env(tmp_path / "prefect", own_server=True)  # brand-new PREFECT_HOME, no PREFECT_API_URL
    cli = subprocess.Popen([CLI, "ingest", "--data-dir", str(tmp_path / "data")], env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = server_child(cli.pid)
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    server.wait(timeout=30)  # raises psutil.TimeoutExpired if the server outlives the CLI
    assert not server.is_running()


def test_a_server_that_cannot_start_in_time_is_one_clear_line(tmp_path):
    env = prefect_env(tmp_path / "prefect", own_server=True, DISTILLERY_SERVER_TIMEOUT_S="0.01")
    proc = subprocess.run([CLI, "ingest", "--data-dir", str(tmp_path / "data")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "temporary Prefect server was not ready after 0 s" in proc.stderr
    assert "DISTILLERY_SERVER_TIMEOUT_S" in proc.stderr
