"""A full disk and an exhausted quota through the real CLI, against local counting servers.

Full disk: the data directory on a small tmpfs filled to ~150 KB free (a file size limit where
mounting is not allowed). The cache's first failed write stops the engine: the server answers at
most the requests already in flight after it; the answers not stored go to a side file; the
message names the cache and the cause; the re-run after freeing space pays nothing twice.

Quota: a 429 with `retry-after: 3600` ends `sample` within max_wait_s + 10 s with one line
"quota exhausted at <endpoint>, retry after <time>", and what had arrived is stored.
"""

import contextlib
import resource
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from e2e import CLI, ROOT, prefect_server
from fake_servers import FakeServer

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from students.runner import run_shard
from tasks.ingest import ingest
from teacher_cache import CacheStore, unstored

pytestmark = pytest.mark.slow
KEY = "sk-storage-0123456789"
CONCURRENCY = 2


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("prefect"), FAKE_KEY=KEY) as e:
        yield e


def prepared(root: Path, url: str, **endpoint) -> tuple[DataDir, Path, int]:
    data = DataDir(root / "data")
    cfg = {"data_dir": str(data.root), "ingest": {"source": "synthetic", "n_problems": 30, "shard_size": 10},
           "sample": {"teacher": "openai", "model": "fake-disk", "k": 2, "variants": ["plain"],
                      "splits": ["train", "val", "test"],
                      "endpoint": {"base_urls": [url], "concurrency": CONCURRENCY, "use_n": False,
                                   "api_key_env": "FAKE_KEY"} | endpoint}}
    path = root.parent / f"{root.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config = FactoryConfig.model_validate(cfg)
    ingest(config.ingest, data)
    for shard in data.shards():
        run_shard("caption", config, data, shard)
    return data, path, 30 * 2


def stored(data: DataDir) -> int:
    if not data.teacher_cache.exists():
        return 0
    with sqlite3.connect(data.teacher_cache) as db:
        return db.execute("SELECT count(*) FROM responses").fetchone()[0]


@contextlib.contextmanager
def small_disk(tmp: Path, kind: str):
    """(a directory, the preexec_fn a child needs): a small tmpfs (where mounting works), or a file size limit."""
    mnt = tmp / "disk"
    mnt.mkdir()
    if kind == "size_limit" or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                                              capture_output=True).returncode:
        def limited():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (160_000, 160_000))  # the WAL grows ~16 KB a commit
        yield mnt, limited
        return
    try:
        yield mnt, None
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave: int) -> Path:
    """A file taking all but `leave` bytes of the tmpfs."""
    free = shutil.disk_usage(mnt).free
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


@pytest.mark.parametrize("kind", ["tmpfs", "size_limit"])
def test_a_full_disk_stops_spending_and_the_rerun_pays_nothing_twice(tmp_path, env, kind):
    with FakeServer("openai", latency=0.2) as server, small_disk(tmp_path, kind) as (mnt, preexec):
        data, cfg, total = prepared(mnt, server.url)
        CacheStore(data.teacher_cache).db.close()  # created while there is room: its first writes then fail
        filler = fill(mnt, 150_000) if preexec is None else None
        ran = subprocess.run([CLI, "sample", "--config", str(cfg)], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=300, preexec_fn=preexec)
        out = ran.stdout + ran.stderr
        assert ran.returncode == 2 and "Traceback" not in out, out[-3000:]
        line = [x for x in out.splitlines() if x.startswith("distillery sample:")][-1]
        assert str(data.teacher_cache) in line and "stopped sending" in line, out[-6000:]
        assert ("disk is full" if preexec is None else "file size limit") in line, line
        answered, kept = sum(server.successes.values()), stored(data)
        assert 0 < answered < total
        assert answered <= kept + 1 + CONCURRENCY, (answered, kept)  # the failed write's answer + those in flight
        sides = unstored.pending(data.teacher_cache)
        assert sides and str(sides[0]) in line, line
        if filler:
            filler.unlink()  # space freed
        rerun = subprocess.run([CLI, "sample", "--config", str(cfg)], env=env, cwd=ROOT, capture_output=True,
                               text=True, timeout=300)
        assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
        assert not server.repeated_successes(), "an answer was paid twice"
        assert sum(server.successes.values()) == total and stored(data) == total
        assert not [p for p in sides if p.exists()], "the side file was not imported"


class QuotaServer(FakeServer):
    """Answers the first `free` requests, then 429 with retry-after 3600 (a daily quota spent)."""

    def __init__(self, free: int):
        super().__init__("openai", latency=0.1)
        self.free, self.arrivals = free, 0

    async def openai(self, request: web.Request) -> web.Response:
        self.arrivals += 1
        if self.arrivals > self.free:
            return web.json_response({"error": {"message": "You exceeded your current quota", "code": 429}},
                                     status=429, headers={"retry-after": "3600"})
        return await super().openai(request)


def test_an_exhausted_quota_ends_the_stage_within_max_wait_with_one_line(tmp_path, env):
    with QuotaServer(free=5) as server:
        data, cfg, total = prepared(tmp_path / "q", server.url, backoff_max_s=5, max_wait_s=20)
        start = time.monotonic()
        ran = subprocess.run([CLI, "sample", "--config", str(cfg)], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
        took = time.monotonic() - start
    out = ran.stdout + ran.stderr
    assert ran.returncode == 2 and "Traceback" not in out, out[-3000:]
    line = [x for x in out.splitlines() if x.startswith("distillery sample:")][-1]
    assert f"quota exhausted at {server.url}, retry after" in line and "max_wait_s" in line, line
    assert took < 20 + 10, f"{took:.0f} s"
    assert stored(data) == sum(server.successes.values()) == 5  # what arrived is stored
    assert server.arrivals <= 5 + 1 + CONCURRENCY  # the 429 stops the engine: no more asking
