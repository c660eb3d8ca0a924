"""`make run` as a newcomer meets it: wall time per stage and peak memory, against the budget.

    .venv/bin/python bench/first_run.py [--config configs/default.yaml] [--runs 1] [--keep DIR]

Each run gets a brand-new HOME (so a new Prefect database and no converted model) and a new data
directory; the embedded GGUF is converted in it first, as `make setup` does (timed apart), and then
`distillery run` runs as `make run` does. The process tree (the CLI and its temporary Prefect server) is sampled every
0.2 s. Prints, per run: seconds per stage, start-up (server, imports, the rest), total; the
largest process's peak RSS and the tree's; and each as a ratio to the budget (5 min, 3 GiB).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S, BUDGET_RSS = 300.0, 3 * 2**30


class TreeRss(threading.Thread):
    """Peak RSS of one process and of the process and its descendants, sampled."""

    def __init__(self, pid: int, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.every_s = psutil.Process(pid), every_s
        self.peak_one = self.peak_tree = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss = []
            for p in procs:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            if rss:
                self.peak_one, self.peak_tree = max(self.peak_one, max(rss)), max(self.peak_tree, sum(rss))
            time.sleep(self.every_s)


def one_run(config: str, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DISTILLERY_", "XDG_"))}
    env |= {"HOME": str(home), "HF_HUB_OFFLINE": "1"}
    cli = Path(sys.executable).parent / "distillery"
    began = time.perf_counter()
    converted = subprocess.run([sys.executable, "-m", "students.model"], cwd=ROOT, env=env, capture_output=True, text=True)
    if converted.returncode != 0:
        sys.exit(f"converting the embedded model failed ({converted.returncode}):\n{converted.stderr[-4000:]}")
    convert_s = time.perf_counter() - began
    start = time.perf_counter()
    proc = subprocess.Popen([str(cli), "run", "--config", config, "--data-dir", str(home / "data")], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rss = TreeRss(proc.pid)
    rss.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    rss.stopped.set()
    (home / "run.log").write_text(out + err)
    if proc.returncode != 0:
        sys.exit(f"distillery run failed ({proc.returncode}):\n{err[-4000:]}")
    result = json.loads(out[out.rindex("\n{\n") + 1:])  # the CLI prints its result last
    tracebacks = (out + err).count("Traceback")
    return dict(convert_s=convert_s, wall_s=wall, stages=result["wall_s"], peak_one=rss.peak_one, peak_tree=rss.peak_tree,
                tracebacks=tracebacks)


def report(i: int, r: dict) -> None:
    staged = sum(r["stages"].values())
    print(f"run {i}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()))
    print(f"  stages {staged:.1f} s + start-up and shut-down {r['wall_s'] - staged:.1f} s = {r['wall_s']:.1f} s"
          f"  -> {r['wall_s'] / BUDGET_S:.2f} of the 5 min budget")
    print(f"  peak RSS: largest process {r['peak_one'] / 2**30:.2f} GiB -> {r['peak_one'] / BUDGET_RSS:.2f} of 3 GiB;"
          f" CLI + Prefect server {r['peak_tree'] / 2**30:.2f} GiB -> {r['peak_tree'] / BUDGET_RSS:.2f}")
    print(f"  tracebacks in the log: {r['tracebacks']}; before the run, `make setup` converting the embedded model:"
          f" {r['convert_s']:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--keep", help="leave each run's HOME under this directory")
    args = ap.parse_args()
    for i in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="first-run-", dir=args.keep) as home:
            report(i, one_run(args.config, Path(home)))
            if args.keep:
                os.rename(home, f"{home}-kept")
                Path(home).mkdir()  # for TemporaryDirectory's cleanup


if __name__ == "__main__":
    main()
