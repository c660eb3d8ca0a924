"""evaluate: a student's answers on a split, graded like teacher samples: greedy answers to each
evaluation prompt (`cot`, `direct`) and, for pass@k, k sampled answers to the `cot` prompt."""

import time
from dataclasses import dataclass

import polars as pl

from schemas.config import EvaluateConfig, VerifyConfig
from students.generate import Generated, generate
from students.tools import TOOLS, tool_frame
from tasks.evals import eval_frame
from tasks.progress import Progress
from tasks.prompts import user_message


def load_student(base: str, adapter_dir: str | None, kind: str = "causal_lm", compose=None):
    """The base model (a vlm: image-text-to-text) with the adapter applied; LoRA merged in. A compose
    student: its directory, or the untrained composition of `base` and `compose` (a ComposeConfig)."""
    if kind == "compose":
        from students.compose import load_compose

        return load_compose(adapter_dir, base, compose)
    if kind == "vlm":
        from students.vlm import load_vlm

        model = load_vlm(base)
    else:
        from students.model import load_model

        model = load_model(base)
    if adapter_dir is None:
        return model
    from peft import PeftModel

    student = PeftModel.from_pretrained(model, adapter_dir)
    if student.peft_config["default"].peft_type == "LORA":
        return student.merge_and_unload().eval()  # same outputs, plain-model speed
    return student.eval()


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


def evaluate_student(solver: Solver, problems: pl.DataFrame, captions: dict[str, str], variant: str, info: dict,
                     cfg: EvaluateConfig, seed: int, verify: VerifyConfig, judge=None) -> pl.DataFrame:
    """Evals rows for one student, graded as `verify` grades samples (`judge`: a CachedTeacher for
    `verify.judge`); `info` carries run, student, arm, method, seed, eval_fingerprint. Variant `tools`:
    answers with the tools offered (students/tools.py)."""
    import torch

    if variant == TOOLS:
        return tool_frame(solver.model, solver.tok, problems, captions, info, cfg, verify, judge)
    rows, info = problems.to_dicts(), info | dict(variant=variant)
    frames = []
    for style in cfg.prompts:
        prompts = [user_message(p, captions.get(p["problem_id"]), variant, style) for p in rows]
        got = answer(solver, prompts, cfg.max_new_tokens, cfg.batch_size, cfg.stop_at_answer,
                     f"evaluate {info['student']} ({style})")
        frames.append(eval_frame(rows, got, info | dict(prompt_style=style, decoding="greedy"), 1, verify, judge))
    if cfg.k > 1:
        torch.manual_seed(seed)
        prompts = [user_message(p, captions.get(p["problem_id"]), variant, "cot") for p in rows]
        got = answer(solver, prompts, cfg.max_new_tokens, max(1, cfg.batch_size // cfg.k), cfg.stop_at_answer,
                     f"evaluate {info['student']} (pass@{cfg.k})", k=cfg.k, temperature=cfg.temperature)
        frames.append(eval_frame(rows, got, info | dict(prompt_style="cot", decoding="sampled"), cfg.k, verify, judge))
    return pl.concat(frames)
