"""SIGKILL at random points of `sample`, `verify`, `arms` and `export` (six points each: four in
the middle of a parquet write, two at a random moment): no
unreadable parquet anywhere under the data directory, the earlier stages' outputs byte-identical,
and the re-run completes, removes the killed run's leftovers and writes what a clean run writes.

The stage runs as the CLI runs it (students.runner over every shard), in a process of its own that
prints START once its imports are done, so the kill lands inside the stage's work.
"""

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from e2e import ROOT
from fake_servers import FakeServer

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from students.backends import arms_teacher, close_backends
from students.runner import run_shard
from tasks.arms import run_arms
from tasks.ingest import ingest

pytestmark = pytest.mark.slow
KILLS = 6
SCRIPT = """
import os, signal, sys
import datasets, polars as pl
from schemas.config import FactoryConfig
from schemas.paths import DataDir
from tasks.arms import run_arms
from tasks.export import run_export
from students.backends import arms_teacher
from students.runner import run_shard

if len(sys.argv) > 3:  # die in the middle of the Nth parquet write: the file half there, as a kill leaves it
    left = [int(sys.argv[3])]

    def dying(write):
        def wrapper(self, path, *args, **kwargs):
            out = write(self, path, *args, **kwargs)
            left[0] -= 1
            if left[0] == 0:
                with open(path, "r+b") as f:
                    f.truncate(os.path.getsize(path) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        return wrapper

    pl.DataFrame.write_parquet = dying(pl.DataFrame.write_parquet)
    datasets.Dataset.to_parquet = dying(datasets.Dataset.to_parquet)

cfg = FactoryConfig.from_yaml(sys.argv[1])
data, stage = DataDir(cfg.data_dir), sys.argv[2]
print("START", flush=True)
if stage == "sample":
    for shard in data.shards():
        run_shard("sample", cfg, data, shard)
elif stage == "verify":
    for f in data.sample_files():
        run_shard("verify", cfg, data, f)
elif stage == "arms":
    run_arms(cfg, data, arms_teacher(cfg))
elif stage == "export":
    run_export(cfg, data, arms_teacher(cfg))
print("DONE", flush=True)
"""
EARLIER = {"sample": ("problems", "captions"), "verify": ("problems", "samples"),
           "arms": ("samples", "verdicts", "selected"), "export": ("samples", "selected", "arms")}
WRITES = {"sample": 20, "verify": 10, "arms": 3, "export": 7}  # parquet writes a whole run makes (at least)
OUTPUT = {"sample": "samples", "verify": "verdicts", "arms": "arms", "export": "exports"}


def config(data: DataDir, url: str) -> dict:
    return {"data_dir": str(data.root), "ingest": {"source": "synthetic", "n_problems": 160, "shard_size": 16},
            "sample": {"teacher": "openai", "model": "fake-r1", "k": 3, "splits": ["train"],
                       "endpoint": {"base_urls": [url], "concurrency": 4, "api_key_env": "FAKE_KEY"}},
            "export": {"formats": ["hf", "trl", "sharegpt"]}}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.exists() else {}


def readable(root: Path) -> None:
    for f in root.rglob("*.parquet"):
        pl.read_parquet(f)


def run_stage(cfg_path: Path, stage: str, env: dict, kill_after: float | None = None,
              kill_in_write: int | None = None) -> float:
    """Runs the stage; with `kill_after`, SIGKILLs it that long after START; with `kill_in_write`,
    it dies half-way through its Nth parquet write. Returns the seconds from START to the end."""
    extra = [str(kill_in_write)] if kill_in_write else []
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(cfg_path), stage, *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "START", proc.stderr.read()[-3000:]
    start = time.monotonic()
    if kill_in_write:
        proc.communicate(timeout=600)
        return time.monotonic() - start
    if kill_after is None:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and "DONE" in out, err[-3000:]
        return time.monotonic() - start
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return time.monotonic() - start


def stored(data: DataDir) -> int:
    with sqlite3.connect(data.teacher_cache) as db:
        return db.execute("SELECT count(*) FROM responses").fetchone()[0]


def prepared(tmp: Path, stage: str, url: str) -> tuple[DataDir, Path]:
    """A data directory with every stage before `stage` done, and its config file."""
    data = DataDir(tmp / "data")
    cfg = config(data, url)
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    config_ = FactoryConfig.model_validate(cfg)
    ingest(config_.ingest, data)
    for shard in data.shards():
        run_shard("caption", config_, data, shard)
    if stage == "sample":
        return data, path
    for shard in data.shards():
        run_shard("sample", config_, data, shard)
    close_backends()
    if stage == "verify":
        return data, path
    for f in data.sample_files():
        run_shard("verify", config_, data, f)
        run_shard("select", config_, data, f)
    if stage == "export":
        run_arms(config_, data, arms_teacher(config_))
    return data, path


@pytest.mark.parametrize("stage", ["sample", "verify", "arms", "export"])
def test_sigkill_at_random_points_loses_and_corrupts_nothing(tmp_path, stage):
    env = {**os.environ, "FAKE_KEY": "sk-kill-123456789", "HF_HUB_OFFLINE": "1"}
    rng = random.Random(stage)
    with FakeServer("openai", latency=0.02) as server:
        data, cfg_path = prepared(tmp_path, stage, server.url)
        earlier = {t: snapshot(data.table(t)) for t in EARLIER[stage]}
        duration = run_stage(cfg_path, stage, env)  # how long the stage takes here, and what a whole run writes
        clean = snapshot(data.table(OUTPUT[stage]))
        total = stored(data) if stage == "sample" else 0
        for n in range(KILLS):
            if stage == "sample":  # from scratch each time: the kill must land while requests are asked
                for f in data.teacher_cache.parent.iterdir():
                    f.unlink()
            if n % 2 == 0:  # half the kills replace earlier output, half write where there was none
                shutil.rmtree(data.table(OUTPUT[stage]), ignore_errors=True)
            if n % 3 == 2:  # at a random moment
                run_stage(cfg_path, stage, env, kill_after=rng.uniform(0.05, 0.95) * duration)
            else:  # in the middle of a write, the moment an unsafe writer corrupts
                run_stage(cfg_path, stage, env, kill_in_write=rng.randint(1, WRITES[stage]))
            readable(data.root)  # nothing half-written under a .parquet name, anywhere
            assert {t: snapshot(data.table(t)) for t in EARLIER[stage]} == earlier  # earlier outputs untouched
            answered = sum(server.successes.values())
            kept = stored(data) if stage == "sample" else 0
            run_stage(cfg_path, stage, env)  # the re-run completes
            readable(data.root)
            assert not [p for p in data.root.rglob("*") if p.name.endswith(".tmp")], "leftovers not removed"
            after = snapshot(data.table(OUTPUT[stage]))
            assert after.keys() == clean.keys()
            if stage in ("verify", "arms"):  # deterministic outputs: the same bytes as a clean run
                assert after == clean
            if stage == "sample":  # the re-run asks only what the killed run did not store
                assert sum(server.successes.values()) - answered == total - kept
                samples = pl.read_parquet(data.table("samples") / "**" / "*.parquet")
                assert samples.group_by("problem_id", "variant").len()["len"].unique().to_list() == [3]
