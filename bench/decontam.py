"""What decontamination adds to the arms stage, as a ratio measured in one run.

    .venv/bin/python bench/decontam.py [--train 12700] [--held 8500] [--copies 200]

Writes a problems table of ScienceQA's size (12.7k train, 8.5k val + test; templated
questions from a small vocabulary, so many texts are alike) with `copies` training problems
that copy a held-out one (half exactly, half with one word respelled), then times the arms
stage (dataset arms `raw` and `answer_only`, copies left out) and `contamination()` alone on
the same table, and prints the copies found and the share of the stage decontamination takes.
"""

import argparse
import random
import tempfile
import time

import polars as pl

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, write_table
from students.backends import arms_teacher
from tasks.arms import run_arms
from tasks.decontam import contamination

WORDS = ("which of these states is farthest north south what is the capital select animal that has a backbone "
         "solid liquid gas magnet pull push force mass volume cell plant leaf").split()


def problems(n_train: int, n_held: int, copies: int, rng: random.Random) -> pl.DataFrame:
    def row(i, split, question):
        return dict(problem_id=f"p{i}", source="bench", source_id=str(i), split=split, question=question,
                    choices=[rng.choice(WORDS) for _ in range(3)], answer="a", answer_index=0,
                    answer_type="multiple_choice", hint="", lecture="", solution="s", caption=None, image_sha=None,
                    subject="", topic="", category="", grade="", precision=None, aliases=[])

    def question():
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16))) + "?"

    held = [row(n_train + i, "test" if i % 2 else "val", question()) for i in range(n_held)]
    train = [row(i, "train", question()) for i in range(n_train)]
    for i in range(copies):  # the first `copies` training problems copy held-out ones
        source = held[i]
        text = source["question"] if i % 2 else source["question"].replace(" is ", " iz ", 1)
        train[i] = {**train[i], "question": text, "choices": source["choices"]}
    return pl.DataFrame(train + held, schema=SCHEMAS["problems"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=12700)
    p.add_argument("--held", type=int, default=8500)
    p.add_argument("--copies", type=int, default=200)
    args = p.parse_args()
    df = problems(args.train, args.held, args.copies, random.Random(0))
    with tempfile.TemporaryDirectory() as tmp:
        data = DataDir(tmp)
        write_table(df, data.table("problems") / "bench" / "bench-00000.parquet", "problems")
        start = time.perf_counter()
        cfg = FactoryConfig(data_dir=tmp, arms={"arms": ["raw", "answer_only"]})
        result = run_arms(cfg, data, arms_teacher(cfg))
        stage = time.perf_counter() - start
    start = time.perf_counter()
    flags = contamination(df)
    alone = time.perf_counter() - start
    planted = flags["problem_id"].is_in([f"p{i}" for i in range(args.copies)]).sum()
    print(f"{args.train} train x {args.held} val+test problems; {args.copies} planted copies; flagged "
          f"{result['contaminated']} ({planted} of them planted); rows left in raw: {result['rows']['raw']}")
    print(f"contamination() {alone:.2f} s; arms stage {stage:.2f} s; share = {alone / stage:.3f}")


if __name__ == "__main__":
    main()
