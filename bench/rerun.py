"""A re-run of verify, select and arms on unchanged inputs: every shard skipped, in how long.

    .venv/bin/python bench/rerun.py [--config configs/default.yaml] [--data-dir data]

Runs the three stages once (computing whatever is not current yet), then again, timing the
second pass (the stage functions the flows map over shards, without Prefect's own overhead).
Prints the seconds of each pass, the shards skipped, and the second pass against the 1 s target.
"""

import argparse
import time

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from students.backends import arms_teacher
from students.runner import run_shard
from tasks.arms import run_arms


def one_pass(cfg: FactoryConfig, data: DataDir) -> tuple[float, int, int, bool]:
    start = time.perf_counter()
    files = data.sample_files()
    verified = [run_shard("verify", cfg, data, f) for f in files]
    selected = [run_shard("select", cfg, data, f) for f in files]
    arms = run_arms(cfg, data, arms_teacher(cfg))
    return (time.perf_counter() - start, sum(d.skipped for d in verified) + sum(d.skipped for d in selected),
            2 * len(files), arms["unchanged"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/default.yaml")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    cfg = FactoryConfig.from_yaml(args.config)
    data = DataDir(args.data_dir or cfg.data_dir)
    first, skipped1, n, arms1 = one_pass(cfg, data)
    second, skipped2, _, arms2 = one_pass(cfg, data)
    print(f"first pass:  {first:.3f} s, {skipped1} of {n} verify/select shards skipped, arms unchanged: {arms1}")
    print(f"second pass: {second:.3f} s, {skipped2} of {n} verify/select shards skipped, arms unchanged: {arms2}")
    print(f"second pass / 1 s target = {second:.3f}")


if __name__ == "__main__":
    main()
