"""The reference models' zero-shot answers (H3.6) on the evaluation splits, through the request engine
and the cache, beside the students' in evals/RUN/."""

import polars as pl

from schemas.config import FactoryConfig, ReferenceConfig
from schemas.paths import DataDir
from schemas.tables import write_table
from students.backends import opened
from students.evals import eval_frame, reference_answers
from students.stages import (
    REFERENCE,
    eval_fingerprint,
    eval_problems,
    eval_variants,
    grading_judge,
    greedy_accuracy,
    score_reasoning,
)
from tasks.prompts import user_message


def run_reference(cfg: FactoryConfig, data: DataDir, ref: ReferenceConfig) -> dict:
    """A reference model's zero-shot answers on the evaluation splits, under each variant it is compared
    in, through the request engine and the cache (a re-run asks nothing), as evals rows of `reference:NAME`."""
    problems, variants = eval_problems(cfg, data), eval_variants(cfg, "reference")
    name = f"{REFERENCE}{ref.name}"
    key = eval_fingerprint(f"reference:{ref.model_dump_json()}:{variants}", cfg, problems["problem_id"].to_list())
    info = dict(run=cfg.run, student=name, arm="reference", method="zero-shot", seed=None, eval_fingerprint=key)
    frames, asked = [], 0
    with opened(ref, cfg, data) as model, grading_judge(cfg, data) as judge:
        for v in variants:
            got, n = reference_frames(cfg, data, ref, model, judge, problems.to_dicts(), v, info | dict(variant=v))
            frames, asked = frames + got, asked + n
    df = score_reasoning(cfg, data, pl.concat(frames), problems)
    write_table(df, data.evals(cfg.run) / f"reference-{ref.name}.parquet", "evals")
    return {"student": name, "status": "evaluated", "new_requests": asked, **greedy_accuracy(df, cfg, "plain"),
            "failed": int(df["grader"].eq("failed").sum())}


def reference_frames(cfg: FactoryConfig, data: DataDir, ref: ReferenceConfig, model, judge, rows: list[dict],
                     variant: str, info: dict) -> tuple[list[pl.DataFrame], int]:
    """The reference's evals frames under one prompt variant (greedy per prompt style; k sampled for
    pass@k), and how many requests were new."""
    captions = data.captions(cfg.caption.captioner)
    stop = ref.teacher == "local" and cfg.evaluate.stop_at_answer  # remote models end their answers themselves
    runs = [(style, "greedy", 1, 0.0) for style in cfg.evaluate.prompts]
    runs += [("cot", "sampled", cfg.evaluate.k, cfg.evaluate.temperature)] if cfg.evaluate.k > 1 else []
    frames, asked = [], 0
    for style, decoding, k, temperature in runs:
        prompts = [user_message(p, captions.get(p["problem_id"]), variant, style) for p in rows]
        answers, stats = reference_answers(prompts, model, ref.max_new_tokens, k, temperature, stop)
        frames.append(eval_frame(rows, answers, info | dict(prompt_style=style, decoding=decoding), k, cfg.verify,
                                 judge))
        asked += stats.new
    return frames, asked
