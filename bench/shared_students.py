"""The evaluate stage's students answered two ways in one run, on a data dir whose students are trained:
one at a time (each loaded and merged, as `run_evaluate` does) and in one shared pass (the base loaded
once, mixed-adapter batches, as `run_evaluations` does). Prints seconds of each, their ratio, seconds
per answer, and how many greedy answers differ (token counts or text) between the two.

    PYTHONPATH=. .venv/bin/python bench/shared_students.py --data-dir data [--config configs/default.yaml] [--students N]
"""

import argparse
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def jobs(cfg, data):
    """Every shareable student to answer, whatever answers it has already."""
    from students.stages import BASE, Pending, eval_problems, eval_variants, students
    from students.train import read_meta

    out = []
    for name in students(cfg):
        adapter = None if name == BASE else data.student(cfg.run, name)
        meta = {"arm": BASE, "method": "none", "seed": None} if adapter is None else read_meta(adapter)
        if meta.get("status") != "skipped":
            out.append(Pending(cfg.run, name, adapter, meta, Path("/dev/null"), eval_problems(cfg, data),
                               eval_variants(cfg, meta["arm"]), "bench"))
    return out


def alone(cfg, data, group) -> list[pl.DataFrame]:
    from students.evaluate import evaluate_student
    from students.rows import eval_captions
    from students.stages import solver_for

    frames = []
    for j in group:
        solver = solver_for(cfg, data, str(j.adapter_dir) if j.adapter_dir else None, j.problems)
        frames.append(evaluate_student(solver, j.problems, eval_captions(cfg, data), j.variants, j.info,
                                       cfg.evaluate, j.meta.get("seed") or 0, cfg.verify))
    return frames


def shared(cfg, data, group) -> list[pl.DataFrame]:
    from students.evaluate import Solver
    from students.model import load_tokenizer
    from students.rows import eval_captions
    from students.shared import BASE_ROWS, Member, evaluate_shared, load_shared

    names = {j.student: f"s{i}" for i, j in enumerate(group) if j.adapter_dir}
    model = load_shared(cfg.train.model, {names[j.student]: str(j.adapter_dir) for j in group if j.adapter_dir})
    members = [Member(names.get(j.student, BASE_ROWS), j.variants, j.info, j.meta.get("seed") or 0) for j in group]
    return evaluate_shared(Solver(model, load_tokenizer(cfg.train.model)), group[0].problems,
                           eval_captions(cfg, data), members, cfg.evaluate, cfg.verify)


def main() -> None:
    from schemas.config import FactoryConfig
    from schemas.paths import DataDir
    from students.shared import shareable

    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--students", type=int, default=0, help="only the first N students (0: all)")
    args = ap.parse_args()
    cfg = FactoryConfig.from_yaml(args.config)
    data = DataDir(Path(args.data_dir))
    group = [j for j in jobs(cfg, data) if shareable(cfg, j.adapter_dir)][:args.students or None]
    seconds, frames = {}, {}
    for how, fn in (("alone", alone), ("shared", shared)):
        began = time.perf_counter()
        frames[how] = pl.concat(fn(cfg, data, group))
        seconds[how] = time.perf_counter() - began
    a, s = (frames[h].select("student", "variant", "prompt_style", "problem_id", "response", "generated_tokens")
            for h in ("alone", "shared"))
    differ = a.join(s, on=["student", "variant", "prompt_style", "problem_id"], suffix="_s").filter(
        (pl.col("response") != pl.col("response_s")) | (pl.col("generated_tokens") != pl.col("generated_tokens_s")))
    n = frames["alone"].height
    print(f"{len(group)} students, {n} answers: alone {seconds['alone']:.1f} s ({seconds['alone'] / n:.3f} s an answer), "
          f"shared {seconds['shared']:.1f} s ({seconds['shared'] / n:.3f} s an answer), "
          f"ratio {seconds['alone'] / seconds['shared']:.2f}x; answers that differ: {differ.height} of {n}")


if __name__ == "__main__":
    main()
