"""The rows a student trains on and the captions its prompts carry, by student kind and method: a text
student's are the arm's own prompt/completion; a vlm's or compose's carry the picture (and the caption
only with `train.captions`); GRPO's are the arm's prompts with the problem to grade."""

import polars as pl

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import read_table
from students.grpo import grpo_rows
from students.vlm import training_rows as vlm_rows


def training_rows(cfg: FactoryConfig, data: DataDir, arm_df: pl.DataFrame, method: str) -> list[dict] | None:
    """The trainer's rows when they are not the arm's own prompt/completion: a vlm's or compose's (with images),
    grpo's (the prompt with the problem to grade; a vlm's with its picture too)."""
    if "grpo" not in method and cfg.train.student not in ("vlm", "compose"):
        return None
    problems = read_table(data.table("problems"), "problems")
    if "grpo" in method:
        arm_df = arm_df.unique("problem_id", keep="first", maintain_order=True)  # one prompt per problem
    vlm = vlm_rows(cfg.train, arm_df, problems, eval_captions(cfg, data), data) \
        if cfg.train.student in ("vlm", "compose") else None
    if "grpo" not in method:
        return vlm
    by_id = {p["problem_id"]: p for p in problems.iter_rows(named=True)}
    prompts = arm_df["prompt"].to_list() if vlm is None else [r["prompt"] for r in vlm]  # a vlm's: without the caption
    return grpo_rows(prompts, [by_id[i] for i in arm_df["problem_id"]], cfg.verify,
                     None if vlm is None else [r["images"] for r in vlm])


def eval_captions(cfg: FactoryConfig, data: DataDir) -> dict[str, str]:
    """Captions in the students' prompts (training and evaluation): always for a text student, on request
    for a vlm or compose student (it sees the image)."""
    if cfg.train.student in ("vlm", "compose") and not cfg.train.captions:
        return {}
    return data.captions(cfg.caption.captioner)
