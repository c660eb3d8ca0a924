"""Ctrl-C and SIGTERM through the real CLI (its own temporary Prefect server) against a slow
counting server: after the first signal no request leaves after 1 s, the CLI exits 130 (143)
within 10 s with one line and no traceback, no process is left, and the re-run asks exactly the
requests the interrupted run did not store (none is paid twice). A second Ctrl-C exits at once.
"""

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from e2e import CLI, ROOT, prefect_env
from fake_servers import FakeServer

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from students.runner import run_shard
from tasks.ingest import ingest

pytestmark = pytest.mark.slow
KEY = "sk-interrupt-0123456789"


class ArrivalServer(FakeServer):
    """FakeServer that also notes when each chat request arrives (before its latency)."""

    def __init__(self, **kw):
        super().__init__("openai", **kw)
        self.arrivals: list[float] = []

    async def openai(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.monotonic())
        return await super().openai(request)


def prepared(tmp: Path, url: str, runner: str = "threads") -> tuple[DataDir, Path, int]:
    """Problems ingested and captioned; the sample config (k=2 as 2 requests each); requests in all."""
    data = DataDir(tmp / "data")
    cfg = {"data_dir": str(data.root), "ingest": {"source": "synthetic", "n_problems": 40, "shard_size": 10},
           "runner": {"kind": runner, "workers": 2},
           "sample": {"teacher": "openai", "model": "fake-slow", "k": 2, "variants": ["plain"],
                      "splits": ["train", "val", "test"],
                      "endpoint": {"base_urls": [url], "concurrency": 2, "use_n": False, "api_key_env": "FAKE_KEY"}}}
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config = FactoryConfig.model_validate(cfg)
    ingest(config.ingest, data)
    for shard in data.shards():
        run_shard("caption", config, data, shard)
    return data, path, 40 * 2


def stored(data: DataDir) -> int:
    with sqlite3.connect(data.teacher_cache) as db:
        return db.execute("SELECT count(*) FROM responses").fetchone()[0]


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (the temporary Prefect server, dask nannies and their workers)."""
    parent_of = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent_of[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, parent in parent_of.items() if parent == p]
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_sample(cfg: Path, env: dict) -> subprocess.Popen:
    # A session of its own, as a terminal's foreground job: the signal goes to its whole group.
    return subprocess.Popen([CLI, "sample", "--config", str(cfg)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_requests(server: ArrivalServer, proc: subprocess.Popen, n: int) -> None:
    deadline = time.monotonic() + 300
    while len(server.arrivals) < n:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the CLI sent no requests"
        time.sleep(0.05)


@pytest.mark.parametrize("sig,runner", [(signal.SIGINT, "threads"), (signal.SIGTERM, "threads"),
                                        (signal.SIGINT, "dask")])
def test_first_signal_stops_sending_stores_and_the_rerun_asks_the_rest(tmp_path, sig, runner):
    env = prefect_env(tmp_path / "prefect", own_server=True, FAKE_KEY=KEY)
    with ArrivalServer(latency=0.5) as server:
        data, cfg, total = prepared(tmp_path, server.url, runner)
        proc = start_sample(cfg, env)
        wait_for_requests(server, proc, 6)
        helpers = children(proc.pid)  # the temporary Prefect server among them
        signalled = time.monotonic()
        os.killpg(proc.pid, sig)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - signalled
        late = [t for t in server.arrivals if t > signalled + 1.0]
        assert proc.returncode == 128 + sig, err[-3000:]
        assert took < 10, f"exited {took:.1f} s after the signal: {err[-5000:]}"
        assert not late, f"{len(late)} requests sent more than 1 s after the signal"
        both = out + err
        assert "Traceback" not in both, both[max(0, both.find("Traceback") - 1500):][:4000]
        said = [line for line in err.splitlines() if line.startswith("distillery sample: interrupted")]
        assert len(said) == 1 and "run the same command again" in said[0], err[-2000:]
        time.sleep(1)
        assert not [p for p in helpers if alive(p)], "a process of the CLI is left"
        kept, paid = stored(data), sum(server.successes.values())
        assert 0 < kept < total and paid == kept  # every answer that arrived was stored
        assert f"{kept} answers received in this run are stored" in said[0]

        again = prefect_env(tmp_path / "prefect", FAKE_KEY=KEY)  # the session's server: the re-run's start-up is not under test
        rerun = subprocess.run([CLI, "sample", "--config", str(cfg)], env=again, cwd=ROOT, capture_output=True,
                               text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert sum(server.successes.values()) - paid == total - kept  # exactly what was not stored
        assert not server.repeated_successes() and stored(data) == total


def test_a_second_ctrl_c_exits_at_once(tmp_path):
    env = prefect_env(tmp_path / "prefect", own_server=True, FAKE_KEY=KEY)
    with ArrivalServer(latency=3.0) as server:  # answers take longer than the second Ctrl-C waits
        data, cfg, _ = prepared(tmp_path, server.url)
        proc = start_sample(cfg, env)
        wait_for_requests(server, proc, 2)
        helpers = children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)
        second = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - second < 2, "the second Ctrl-C did not exit at once"
        assert proc.returncode == 130 and "Traceback" not in out + err, err[-3000:]
        assert "SIGINT again: exiting now" in err
        time.sleep(1)
        assert not [p for p in helpers if alive(p)], "a process of the CLI is left"


SECOND_SIGNAL_ELSEWHERE = """
import os, signal, sys, threading, time
from flows.cli import on_signals
from schemas.config import FactoryConfig

on_signals("sample", FactoryConfig(data_dir=sys.argv[1]), time.time())
os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C, handled in the main thread
time.sleep(0.2)

def elsewhere():
    time.sleep(0.3)
    print("second", flush=True)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # the kernel picked this thread
    time.sleep(60)

threading.Thread(target=elsewhere, daemon=True).start()
held = threading.Lock()
held.acquire()
held.acquire(timeout=30)  # the main thread waits on a lock, as on a request in flight
print("the main thread woke up", flush=True)
"""


def test_a_second_ctrl_c_delivered_to_another_thread_exits_at_once(tmp_path):
    """Python runs handlers in the main thread only: a second Ctrl-C the kernel delivers to a
    worker thread, while the main thread waits on a lock, must still end the process at once
    (not when the lock is released, nor 10 s later by the hard stop)."""
    proc = subprocess.Popen([os.sys.executable, "-c", SECOND_SIGNAL_ELSEWHERE, str(tmp_path / "data")], cwd=ROOT,
                            env=os.environ | {"PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "second", proc.communicate()[1][-3000:]
    sent = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert time.monotonic() - sent < 3, err[-3000:]
    assert "SIGINT again: exiting now" in err and "still running" not in err
    assert "woke up" not in out
