"""One student's evaluation answered two ways in one run: a pass per (prompt variant, prompt style), as
the evaluate stage did, and every greedy answer of the student in one pass (`evaluate_student` with all
its variants, as it does now). The embedded model answers the default run's val and test problems under
both variants and both prompt styles. Prints seconds of each, their ratio, and how many greedy answers
differ between the two.

    PYTHONPATH=. .venv/bin/python bench/eval_together.py [--problems 50] [--batch-size 32]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=50, help="synthetic problems ingested (the default run's 50)")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    from schemas.config import EvaluateConfig, FactoryConfig, VerifyConfig
    from schemas.paths import DataDir
    from schemas.tables import read_table
    from students.evaluate import Solver, evaluate_student
    from students.loading import load_student
    from students.model import load_tokenizer
    from tasks.ingest import ingest

    data = DataDir(tempfile.mkdtemp())
    cfg = FactoryConfig.model_validate({"data_dir": str(data.root), "ingest": {"n_problems": args.problems}})
    ingest(cfg.ingest, data)
    problems = read_table(data.table("problems"), "problems").filter(pl.col("split").is_in(["val", "test"]))
    solver = Solver(load_student("embedded", None), load_tokenizer("embedded"))
    info = dict(run="bench", student="base", arm="base", method="none", seed=None, eval_fingerprint="bench")
    variants, styles = ["plain", "lecture"], ["cot", "direct"]
    ev = EvaluateConfig(prompts=styles, k=1, max_new_tokens=128, batch_size=args.batch_size)
    start = time.perf_counter()
    apart = pl.concat([evaluate_student(solver, problems, {}, [v], info, ev.model_copy(update={"prompts": [s]}), 0,
                                        VerifyConfig()) for v in variants for s in styles])
    t_apart = time.perf_counter() - start
    start = time.perf_counter()
    together = evaluate_student(solver, problems, {}, variants, info, ev, 0, VerifyConfig())
    t_together = time.perf_counter() - start
    keys = ["variant", "prompt_style", "problem_id"]
    a, b = (df.sort(keys) for df in (apart, together))
    differ = sum(x != y for x, y in zip(a["response"], b["response"], strict=True))
    print(f"{problems.height} problems x {len(variants)} variants x {len(styles)} styles = {a.height} answers, "
          f"batch size {args.batch_size}")
    print(f"a pass per (variant, style): {t_apart:.1f} s ({t_apart / a.height:.2f} s an answer)")
    print(f"one pass:                    {t_together:.1f} s ({t_together / b.height:.2f} s an answer)")
    print(f"ratio (apart / together):    {t_apart / t_together:.2f}x; greedy answers that differ: {differ} of {a.height}")


if __name__ == "__main__":
    main()
