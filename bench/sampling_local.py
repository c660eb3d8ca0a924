"""Overhead of the sample stage around the local teacher, as a ratio measured in one run.

    .venv/bin/python bench/sampling_local.py [--model embedded] [--problems 24] [--k 2]

Times (a) `sample_shard` through CachedTeacher + SQLite on a fresh cache, (b) bare
`model.generate` on the same prompts in the same batches, (c) `sample_shard` again with every
request cached. Prints (a)/(b) (target close to 1.0) and (c)/(a).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import torch

from schemas.config import SampleConfig, SyntheticIngest
from schemas.paths import DataDir
from students.model import load_model, load_tokenizer
from tasks.ingest import ingest
from tasks.sample import build_requests, sample_shard
from tasks.teachers.local import LocalTeacher
from teacher_cache import CachedTeacher, CacheStore


def bare_generate(model_name: str, cfg: SampleConfig, requests) -> float:
    tok, model = load_tokenizer(model_name), load_model(model_name)
    start = time.perf_counter()
    for i in range(0, len(requests), cfg.batch_size):
        chats = [[{"role": r, "content": c} for r, c in req.messages] for req in requests[i:i + cfg.batch_size]]
        enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True)
        torch.manual_seed(i)
        with torch.no_grad():
            model.generate(**enc, do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p,
                           max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="embedded")
    p.add_argument("--problems", type=int, default=24)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=64)
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp())
    data = DataDir(tmp / "data")
    ingest(SyntheticIngest(n_problems=args.problems, split_fractions={"train": 1.0}), data)
    problems = pl.read_parquet(data.table("problems") / "**" / "*.parquet")
    cfg = SampleConfig(model=args.model, k=args.k, max_new_tokens=args.max_new_tokens)
    requests = [r for _, _, r in build_requests(cfg, problems, {})[0]]
    load_model(args.model)  # warm the file cache so neither timing pays the first read

    teacher = CachedTeacher(LocalTeacher(args.model, cfg.batch_size), CacheStore(tmp / "cache.sqlite"))
    teacher.teacher._load()  # model load is not sampling work
    start = time.perf_counter()
    sample_shard(cfg, problems, {}, teacher)
    staged = time.perf_counter() - start
    bare = bare_generate(args.model, cfg, requests)
    start = time.perf_counter()
    sample_shard(cfg, problems, {}, teacher)
    cached = time.perf_counter() - start
    print(f"requests={len(requests)} batch={cfg.batch_size} max_new_tokens={cfg.max_new_tokens}")
    print(f"sample stage / bare generate = {staged / bare:.3f}   ({staged:.1f}s / {bare:.1f}s)")
    print(f"fully cached re-run / first run = {cached / staged:.4f}   ({cached:.3f}s)")


if __name__ == "__main__":
    sys.exit(main())
