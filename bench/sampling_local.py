"""Tokens/s of the local engine on the default run's sample workload, as ratios measured in one run.

    .venv/bin/python bench/sampling_local.py [--model embedded] [--problems 50] [--max-new-tokens 128]

The requests are the default run's (synthetic problems with their dataset captions, the train split,
both prompt variants, k=2, stop at the answer, temperature 0.7), in the batches the sample stage
makes (`local_batches`). Each batch runs through every engine in turn, so load from elsewhere on the
machine falls on all of them alike:
  engine    `students.generate.generate` (what the `local` teacher and evaluation use)
  bf16      the same loop on the model in bfloat16 (`sample.dtype: bfloat16`)
  before    the loop it replaced (`bench/chunked_generate.py`)
  stage     the sample stage itself (CachedTeacher + SQLite + LocalTeacher) on a fresh cache
  llama.cpp `students.llama_cpp_engine` on the model's GGUF (where llama-cpp-python is installed and the
            model is the embedded one or a .gguf path; `--no-llama-cpp` leaves it out)
Then the same-answers checks on 20 prompts: greedy answers of the engine and of plain `model.generate`,
and (with llama.cpp) greedy answers of llama.cpp and of the engine; in bfloat16, the engine's against
`model.generate`'s, beside `model.generate`'s own against itself asked one prompt at a time (bfloat16
rounding makes a greedy path depend on the batch it is computed in).

Today's figure is the issue's: the embedded teacher at about 56 tokens/s before this work.
"""

import argparse
import copy
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chunked_generate import chunked_generate  # noqa: E402

from schemas.config import SampleConfig, SyntheticIngest  # noqa: E402
from schemas.paths import DataDir  # noqa: E402
from students.generate import cut, generate  # noqa: E402
from students.llama_cpp_engine import LlamaCppEngine  # noqa: E402
from students.model import load_model, load_tokenizer  # noqa: E402
from students.teachers import (
    LocalTeacher,  # noqa: E402
    engine_of,  # noqa: E402
)
from tasks.ingest import ingest  # noqa: E402
from tasks.sample import build_requests  # noqa: E402
from teacher_cache import CachedTeacher, CacheStore  # noqa: E402
from teacher_cache.cached import local_batches  # noqa: E402


def workload(n_problems: int, max_new_tokens: int) -> tuple[SampleConfig, list]:
    tmp = Path(tempfile.mkdtemp())
    ingest(SyntheticIngest(n_problems=n_problems), DataDir(tmp / "data"))
    problems = pl.read_parquet(tmp / "data" / "problems" / "**" / "*.parquet")
    cfg = SampleConfig(max_new_tokens=max_new_tokens)
    captions = dict(zip(problems["problem_id"], problems["caption"], strict=True))  # the `dataset` captioner
    return cfg, [r for _, _, r in build_requests(cfg, problems, captions)[0]]


def chats_of(requests) -> tuple[list[list[dict]], int]:
    """A batch's distinct chats and how many samples each (the k sample indices of one prompt)."""
    groups: dict[tuple, int] = {}
    for r in requests:
        groups[r.messages] = groups.get(r.messages, 0) + 1
    assert len(set(groups.values())) == 1, "a batch whose prompts are asked unequally often"
    return [[{"role": role, "content": c} for role, c in m] for m in groups], next(iter(groups.values()))


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """The most resident memory above the start, sampled every 50 ms while the block runs (MiB)."""

    def __enter__(self):
        self.start, self.peak, self.stop = rss_mib(), 0.0, threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()
        return self

    def watch(self):
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, rss_mib() - self.start)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def time_engines(engines: dict, model, tok, cfg: SampleConfig, requests, stage=None) -> dict[str, list[float]]:
    """engine name -> [seconds, new tokens, peak MiB above the start], every batch through every engine in turn."""
    totals = {name: [0.0, 0, 0.0] for name in [*engines, *(["stage"] if stage is not None else [])]}
    for b, batch in enumerate(local_batches(requests, cfg.batch_size)):
        chats, n = chats_of([requests[i] for i in batch])
        for name, engine in engines.items():
            torch.manual_seed(b)
            start = time.perf_counter()
            with PeakRss() as rss:
                out = engine(model, tok, chats, cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                             num_return_sequences=n, stop_at_answer=cfg.stop_at_answer)
            totals[name][0] += time.perf_counter() - start
            totals[name][1] += sum(g.new_tokens for g in out)
            totals[name][2] = max(totals[name][2], rss.peak)
        if stage is None:
            continue
        start = time.perf_counter()
        done, _ = stage.complete([requests[i] for i in batch])
        totals["stage"][0] += time.perf_counter() - start
        totals["stage"][1] += sum(c.completion_tokens for c in done)
    return totals


TODAY = 56.0  # tokens/s of the embedded teacher when the speed issue was filed


def plain(model, tok, chats: list[list[dict]], max_new_tokens: int) -> list[str]:
    """Greedy answers of one plain `model.generate` call on the batch."""
    enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        ref = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
    return [tok.decode(cut(tok, row, False)[0], skip_special_tokens=True) for row in ref[:, enc["input_ids"].shape[1]:].tolist()]


def same_answers(model, tok, chats: list[list[dict]], max_new_tokens: int) -> int:
    """How many of the chats get token-for-token the answer of one plain greedy `model.generate` call."""
    ours = generate(model, tok, chats, max_new_tokens)
    return sum(g.text == ref for g, ref in zip(ours, plain(model, tok, chats, max_new_tokens), strict=True))


def alone_vs_batched(model, tok, chats: list[list[dict]], max_new_tokens: int) -> int:
    """How many chats `model.generate` answers alike asked alone and in one batch."""
    batched = plain(model, tok, chats, max_new_tokens)
    return sum(plain(model, tok, [c], max_new_tokens)[0] == b for c, b in zip(chats, batched, strict=True))


def llama_cpp_engine(name: str):
    """The llama.cpp engine as a `generate`-like callable (it ignores the transformers model), seeded as
    `time_engines` seeds each batch."""
    engine = LlamaCppEngine(name)

    def run(model, tok, chats, max_new_tokens, **kw):
        return engine.generate(chats, max_new_tokens, seed=torch.initial_seed(), **kw)

    return run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="embedded")
    p.add_argument("--problems", type=int, default=50)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--stage", action=argparse.BooleanOptionalAction, default=True, help="time the stage too")
    p.add_argument("--llama-cpp", action=argparse.BooleanOptionalAction, default=True,
                   help="time llama.cpp too, where it is installed and the model is a GGUF")
    args = p.parse_args(argv)
    cfg, requests = workload(args.problems, args.max_new_tokens)
    tok, model = load_tokenizer(args.model), load_model(args.model)
    teacher = LocalTeacher(args.model, cfg.batch_size)
    teacher._tok, teacher._model = tok, model  # one copy of the weights for all three
    stage = CachedTeacher(teacher, CacheStore(Path(tempfile.mkdtemp()) / "cache.sqlite")) if args.stage else None
    half = copy.deepcopy(model).to(torch.bfloat16)
    engines = {"engine": generate, "bf16": lambda _, *a, **kw: generate(half, *a, **kw), "before": chunked_generate}
    if args.llama_cpp and engine_of(args.model, "auto") == "llama_cpp":
        engines["llama.cpp"] = llama_cpp_engine(args.model)
    totals = time_engines(engines, model, tok, cfg, requests, stage)
    print(f"requests={len(requests)} batch={cfg.batch_size} max_new_tokens={cfg.max_new_tokens} "
          f"threads={torch.get_num_threads()}")
    for name, (s, n, peak) in totals.items():
        print(f"{name:9s} {n:6d} tokens {s:7.1f} s {n / s:7.1f} tok/s" + (f"  peak +{peak:.0f} MiB" if peak else ""))
    rate = {name: n / s for name, (s, n, _) in totals.items()}
    print(f"engine / today ({TODAY:.0f} tok/s) = {rate['engine'] / TODAY:.2f}x   bf16 / today = {rate['bf16'] / TODAY:.2f}x"
          f"   bf16 / engine = {rate['bf16'] / rate['engine']:.2f}x")
    print(f"engine / before = {rate['engine'] / rate['before']:.2f}x" +
          (f"   stage / engine = {rate['stage'] / rate['engine']:.3f}" if args.stage else "") +
          (f"   engine / llama.cpp = {rate['engine'] / rate['llama.cpp']:.2f}" if "llama.cpp" in rate else ""))
    chats = [[{"role": r, "content": c} for r, c in m] for m in dict.fromkeys(q.messages for q in requests)][:20]
    print(f"same answers (greedy, engine vs model.generate): {same_answers(model, tok, chats, 64)}/{len(chats)}")
    print(f"same answers (greedy, bf16 engine vs bf16 model.generate): {same_answers(half, tok, chats, 64)}/{len(chats)}"
          f"; bf16 model.generate alone vs batched: {alone_vs_batched(half, tok, chats, 64)}/{len(chats)}")
    if "llama.cpp" in engines:
        ours, theirs = generate(model, tok, chats, 64), engines["llama.cpp"](model, tok, chats, 64)
        same = sum(a.text == b.text for a, b in zip(ours, theirs, strict=True))
        print(f"same answers (greedy, llama.cpp vs engine, 64 tokens): {same}/{len(chats)}")


if __name__ == "__main__":
    sys.exit(main())
