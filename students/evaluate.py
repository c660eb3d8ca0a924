"""evaluate: a student's answers on a split, graded like teacher samples: greedy answers to each
evaluation prompt (`cot`, `direct`) and, for pass@k, k sampled answers to the `cot` prompt."""

import time
from dataclasses import dataclass, replace

import polars as pl

from schemas.config import EvaluateConfig, VerifyConfig
from schemas.progress import Progress
from students.evals import eval_frame
from students.generate import Generated, generate
from students.tools import TOOLS, tool_frame
from tasks.prompts import user_message


@dataclass
class Solver:
    """A loaded student and how it is asked: `processor` and `images` (one per problem, None where it
    has none) for a vlm, `tok` for a text model."""
    model: object
    tok: object = None
    processor: object = None
    images: list | None = None

    def __call__(self, prompts: list[str], rows: range, max_new_tokens: int, **sampling) -> list[Generated]:
        if self.processor is not None:
            from students.vlm import vlm_generate

            return vlm_generate(self.model, self.processor, prompts, [self.images[i] for i in rows], max_new_tokens,
                                **sampling)
        return generate(self.model, self.tok, [[{"role": "user", "content": p}] for p in prompts], max_new_tokens,
                        **sampling)  # sampling may carry adapter_names: a shared LoRA model's adapter per row


def answer(solver: Solver, prompts: list[str], max_new_tokens: int, batch_size: int, stop_at_answer: bool = True,
           desc: str = "evaluating", k: int = 1, temperature: float = 0.0,
           adapters: list[str] | None = None) -> list[tuple[Generated, float]]:
    """(answer, seconds per answer) for each prompt, `batch_size` prompts at a time: one greedy
    answer each, or k sampled ones (prompt-major) when temperature > 0. `adapters`: the adapter of a
    shared LoRA model that answers each prompt (students/shared.py)."""
    out: list[tuple[Generated, float]] = []
    with Progress(desc, total=len(prompts) * k, unit="answers") as progress:
        for start in range(0, len(prompts), batch_size):
            rows = range(start, min(start + batch_size, len(prompts)))
            began = time.perf_counter()
            per_row = {} if adapters is None else {"adapter_names": [adapters[i] for i in rows]}
            got = solver([prompts[i] for i in rows], rows, max_new_tokens, temperature=temperature,
                         num_return_sequences=k, stop_at_answer=stop_at_answer, **per_row)
            per = (time.perf_counter() - began) / len(got)
            out += [(g, per) for g in got]
            progress.update(len(got))
    return out


def evaluate_student(solver: Solver, problems: pl.DataFrame, captions: dict[str, str], variants: list[str],
                     info: dict, cfg: EvaluateConfig, seed: int, verify: VerifyConfig, judge=None) -> pl.DataFrame:
    """Evals rows for one student under its prompt variants, graded as `verify` grades samples (`judge`: a
    CachedTeacher for `verify.judge`); `info` carries run, student, arm, method, seed, eval_fingerprint.
    The greedy answers of every (variant, prompt style) go through `answer` together (fuller batches, the
    same per-row greedy decoding); each variant's sampled answers through their own pass, seeded alike,
    so a variant's samples do not depend on which other variants a student is asked (H3.4 / H3.5 ask both
    sides alike) nor on `evaluate.shared`. Variant `tools`: answers with the tools offered (students/tools.py)."""
    import torch

    rows, asked = problems.to_dicts(), [v for v in variants if v != TOOLS]
    greedy = [(v, s) for v in asked for s in cfg.prompts]
    frames = dict(zip(greedy, answered(solver, rows, captions, greedy, info, cfg, verify, judge, "greedy"), strict=True))
    for v in asked if cfg.k > 1 else []:
        torch.manual_seed(seed)
        frames[(v, "sampled")] = answered(solver, rows, captions, [(v, "cot")], info, cfg, verify, judge, "sampled")[0]
    if TOOLS in variants:
        frames[(TOOLS, "")] = tool_frame(solver.model, solver.tok, problems, captions, info, cfg, verify, judge)
    order = {v: i for i, v in enumerate(variants)}  # rows in the variants' order, greedy styles before sampled
    return pl.concat([frames[k] for k in sorted(frames, key=lambda k: order[k[0]])], how="vertical")


def answered(solver: Solver, rows: list[dict], captions: dict[str, str], jobs: list[tuple[str, str]], info: dict,
             cfg: EvaluateConfig, verify: VerifyConfig, judge, decoding: str) -> list[pl.DataFrame]:
    """One `answer` pass over the prompts of every (variant, style) job, then a graded frame per job."""
    if not jobs:
        return []
    k = cfg.k if decoding == "sampled" else 1
    # problem after problem, its jobs side by side: a batch holds each problem's prompts together, which
    # share their start (students/prefill.py prefills it once)
    prompts = [user_message(p, captions.get(p["problem_id"]), v, style) for p in rows for v, style in jobs]
    styles = ", ".join(dict.fromkeys(style for _, style in jobs))
    if getattr(solver, "images", None) is not None:  # one picture per problem, for each of its prompts
        solver = replace(solver, images=[image for image in solver.images for _ in jobs])
    asked = answer(solver, prompts, cfg.max_new_tokens, max(1, cfg.batch_size // k), cfg.stop_at_answer,
                   f"evaluate {info['student']} ({styles}{f', pass@{k}' if k > 1 else ''})", k=k,
                   temperature=cfg.temperature if k > 1 else 0.0)
    at = len(jobs) * k  # answers a problem
    got = [a for j in range(len(jobs)) for r in range(len(rows)) for a in asked[r * at + j * k:r * at + (j + 1) * k]]
    per_job = len(rows) * k
    return [eval_frame(rows, got[j * per_job:(j + 1) * per_job], info | dict(variant=v, prompt_style=style,
                                                                               decoding=decoding), k, verify, judge)
            for j, (v, style) in enumerate(jobs)]
