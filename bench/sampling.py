"""Overhead of the sample stage around a remote teacher, as a ratio measured in one run.

    .venv/bin/python bench/sampling.py [--problems 2000] [--k 4] [--concurrency 32] [--latency 0.05]

Starts the OpenAI wire-format test server (tests/fake_servers.py) in its own process with a
fixed latency per request, then times, against it:
(a) the sample stage (`run_shard("sample", ...)` in students/runner.py: the production `openai` backend through the
    request engine, the SQLite cache and the parquet write) on a fresh cache;
(b) a bare aiohttp client sending the same request bodies at the same concurrency.
Prints (a)/(b) (target <= 1.3), and (c)/(a) for the stage re-run with everything cached.
"""

import argparse
import asyncio
import gc
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import polars as pl

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, write_table
from students.backends import close_backends
from students.runner import run_shard
from tasks.sample import build_requests
from tasks.teachers.openai_compat import OpenAITeacher

ROOT = Path(__file__).resolve().parents[1]
SHARD = "bench/bench-00000"


def problems(n: int) -> pl.DataFrame:
    rows = [dict(problem_id=f"p{i}", source="bench", source_id=str(i), split="train",
                 question=f"Problem {i}: which option is the {i % 7}th colour of the rainbow?",
                 choices=["red", "orange", "yellow", "green"], answer="red", answer_index=0,
                 answer_type="multiple_choice", hint="", lecture="", solution="", caption=None, image_sha=None,
                 subject="s", topic="t", category="c", grade="g") for i in range(n)]
    return pl.DataFrame(rows, schema=SCHEMAS["problems"])


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_servers.py"), "--kind", "openai",
                             "--latency", str(latency), "--port", str(port)])
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the test server did not start")


async def bare_client(url: str, bodies: list[dict], concurrency: int) -> float:
    """The same requests with nothing but aiohttp: the floor the stage is compared with."""
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one(body):
            async with sem, session.post(f"{url}/chat/completions", json=body,
                                         headers={"Authorization": "Bearer EMPTY"}) as r:
                r.raise_for_status()
                return await r.json()

        start = time.perf_counter()
        answers = await asyncio.gather(*(one(b) for b in bodies))
        elapsed = time.perf_counter() - start
    assert all(a["choices"] for a in answers)
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--problems", type=int, default=2000)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--latency", type=float, default=0.05)
    args = p.parse_args()
    server, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = DataDir(tmp)
            probs = problems(args.problems)
            write_table(probs, data.table("problems") / f"{SHARD}.parquet", "problems")
            cfg = FactoryConfig.model_validate({
                "data_dir": tmp, "arms": {"arms": ["raw"]},
                "sample": {"teacher": "openai", "model": "bench-model", "k": args.k, "variants": ["plain"],
                           "endpoint": {"base_urls": [url], "concurrency": args.concurrency}}})
            # The bare client sends exactly the bodies the backend builds: one n=k request per problem.
            teacher = OpenAITeacher.from_config(cfg.sample)
            reqs = [r for _, _, r in build_requests(cfg.sample, probs, {})[0]]
            bodies = [teacher.body(reqs[i:i + args.k]) for i in range(0, len(reqs), args.k)]
            bare = asyncio.run(bare_client(url, bodies, args.concurrency))

            start = time.perf_counter()  # the stage opens its teacher (the cache, a client session) itself
            stats = run_shard("sample", cfg, data, SHARD)
            stage = time.perf_counter() - start
            gc.collect()  # a re-run is a new process: not the first run's garbage
            start = time.perf_counter()
            again = run_shard("sample", cfg, data, SHARD)
            rerun = time.perf_counter() - start
            close_backends()
            assert stats.new == len(reqs) and stats.failed == 0 and again.new == 0
    finally:
        server.terminate()
    print(f"{len(bodies)} requests ({args.problems} problems x k={args.k} as n={args.k}), concurrency "
          f"{args.concurrency}, server latency {args.latency * 1000:.0f} ms")
    print(f"bare aiohttp client: {bare:.2f} s   sample stage: {stage:.2f} s   cached re-run: {rerun:.3f} s")
    print(f"sample stage / bare client = {stage / bare:.3f}   (target <= 1.3)")
    print(f"cached re-run / sample stage = {rerun / stage:.4f}")


if __name__ == "__main__":
    main()
