"""verify: a verdict for every sample (recomputable; never calls a model)."""

import polars as pl

from schemas.config import VerifyConfig
from schemas.tables import SCHEMAS
from tasks.grade import grade


def full_response(reasoning: str | None, content: str) -> str:
    return content if not reasoning else f"{reasoning}\n{content}"


def verify_shard(cfg: VerifyConfig, samples: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """Graded on the answer text; the reasoning is consulted only if the answer text has none."""
    by_id = {p["problem_id"]: p for p in problems.iter_rows(named=True)}
    rows = []
    for s in samples.iter_rows(named=True):
        p = by_id.get(s["problem_id"])
        if p is None:
            v = dict(extracted=None, correct=None, grader="none", reason="problem not in problems table")
        else:
            verdict = grade(s["content"], p, cfg.rel_tol, cfg.abs_tol)
            if verdict.extracted is None and s["reasoning"]:
                verdict = grade(full_response(s["reasoning"], s["content"]), p, cfg.rel_tol, cfg.abs_tol)
            v = vars(verdict)
        rows.append(dict(sample_id=s["sample_id"], problem_id=s["problem_id"], teacher=s["teacher"],
                         variant=s["variant"], **v))
    return pl.DataFrame(rows, schema=SCHEMAS["verdicts"])
