"""evaluate: a student's answers on a split, graded like teacher samples: greedy answers to each
evaluation prompt (`cot`, `direct`) and, for pass@k, k sampled answers to the `cot` prompt."""

import time

import polars as pl

from schemas.config import EvaluateConfig, VerifyConfig
from students.generate import Generated, generate
from tasks.evals import eval_frame
from tasks.progress import Progress
from tasks.prompts import user_message


def load_student(base: str, adapter_dir: str | None):
    from students.model import load_model

    model = load_model(base)
    if adapter_dir is None:
        return model
    from peft import PeftModel

    student = PeftModel.from_pretrained(model, adapter_dir)
    if student.peft_config["default"].peft_type == "LORA":
        return student.merge_and_unload().eval()  # same outputs, plain-model speed
    return student.eval()


def answer(model, tok, prompts: list[str], max_new_tokens: int, batch_size: int, stop_at_answer: bool = True,
           desc: str = "evaluating", k: int = 1, temperature: float = 0.0) -> list[tuple[Generated, float]]:
    """(answer, seconds per answer) for each prompt, `batch_size` prompts at a time: one greedy
    answer each, or k sampled ones (prompt-major) when temperature > 0."""
    out: list[tuple[Generated, float]] = []
    with Progress(desc, total=len(prompts) * k, unit="answers") as progress:
        for start in range(0, len(prompts), batch_size):
            chats = [[{"role": "user", "content": p}] for p in prompts[start:start + batch_size]]
            began = time.perf_counter()
            got = generate(model, tok, chats, max_new_tokens, temperature=temperature, num_return_sequences=k,
                           stop_at_answer=stop_at_answer)
            per = (time.perf_counter() - began) / len(got)
            out += [(g, per) for g in got]
            progress.update(len(got))
    return out


def evaluate_student(model, tok, problems: pl.DataFrame, captions: dict[str, str], variant: str, info: dict,
                     cfg: EvaluateConfig, seed: int = 0, verify: VerifyConfig | None = None) -> pl.DataFrame:
    """Evals rows for one student, graded as `verify` grades samples; `info` carries run, student,
    arm, method, seed, eval_fingerprint."""
    import torch

    rows = problems.to_dicts()
    frames = []
    for style in cfg.prompts:
        prompts = [user_message(p, captions.get(p["problem_id"]), variant, style) for p in rows]
        got = answer(model, tok, prompts, cfg.max_new_tokens, cfg.batch_size, cfg.stop_at_answer,
                     f"evaluate {info['student']} ({style})")
        frames.append(eval_frame(rows, got, info | dict(prompt_style=style, decoding="greedy"), k=1, verify=verify))
    if cfg.k > 1:
        torch.manual_seed(seed)
        prompts = [user_message(p, captions.get(p["problem_id"]), variant, "cot") for p in rows]
        got = answer(model, tok, prompts, cfg.max_new_tokens, max(1, cfg.batch_size // cfg.k), cfg.stop_at_answer,
                     f"evaluate {info['student']} (pass@{cfg.k})", k=cfg.k, temperature=cfg.temperature)
        frames.append(eval_frame(rows, got, info | dict(prompt_style="cot", decoding="sampled"), k=cfg.k,
                                 verify=verify))
    return pl.concat(frames)
