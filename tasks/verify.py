"""verify: a verdict for every sample (recomputable; never calls a model).

Multiple-choice and numeric grading are regular expressions and run inline. Free-form grading
(mathruler, sympy, math-verify) runs in worker processes with a time limit per item, so
pathological LaTeX cannot hang a run: an item past the limit gets a verdict of None with the
reason, its worker is replaced, and the rest go on.
"""

import multiprocessing as mp

import polars as pl

from schemas.config import VerifyConfig
from schemas.tables import SCHEMAS
from tasks.grade import Verdict, grade

Item = tuple[str, dict, float, float]  # (response, problem, rel_tol, abs_tol)


def full_response(reasoning: str | None, content: str) -> str:
    return content if not reasoning else f"{reasoning}\n{content}"


def safe_grade(item: Item) -> Verdict:
    """`grade`, with any exception turned into a verdict that says what went wrong."""
    try:
        return grade(*item)
    except Exception as e:  # noqa: BLE001  a grader bug must not lose the shard
        return Verdict(None, None, "error", f"{type(e).__name__}: {e}"[:300])


def grade_all(items: list[Item], limit_s: float = 10.0, workers: int = 2) -> list[Verdict]:
    """Verdicts for items in order; free-form ones in a process pool, each within `limit_s`."""
    out: list[Verdict | None] = [None if it[1]["answer_type"] == "free_form" else safe_grade(it) for it in items]
    pending = [i for i, v in enumerate(out) if v is None]
    ctx = mp.get_context("forkserver")
    while pending:
        with ctx.Pool(min(workers, len(pending))) as pool:
            jobs = {i: pool.apply_async(safe_grade, (items[i],)) for i in pending}
            stuck = None
            for i in pending:
                try:
                    out[i] = jobs[i].get(timeout=limit_s)
                except mp.TimeoutError:
                    stuck = i
                    break
            done = {i for i in pending if out[i] is not None}
            for i in pending:  # keep what finished meanwhile; the pool (and the stuck worker) goes
                if i not in done and i != stuck and jobs[i].ready():
                    out[i] = jobs[i].get()
            if stuck is not None:
                out[stuck] = Verdict(None, None, "timeout", f"grading took longer than {limit_s:g} s")
            pool.terminate()
        pending = [i for i in pending if out[i] is None]
    return out


def verify_shard(cfg: VerifyConfig, samples: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """Graded on the answer text; the reasoning is consulted only if the answer text has none."""
    by_id = {p["problem_id"]: p for p in problems.iter_rows(named=True)}
    rows = list(samples.iter_rows(named=True))
    items = [(s["content"], by_id[s["problem_id"]], cfg.rel_tol, cfg.abs_tol) for s in rows if s["problem_id"] in by_id]
    verdicts = iter(grade_all(items, cfg.time_limit_s, cfg.workers))
    retry = []
    out = []
    for s in rows:
        if s["problem_id"] not in by_id:
            v = Verdict(None, None, "none", "problem not in problems table")
        else:
            v = next(verdicts)
            if v.extracted is None and s["reasoning"] and v.grader not in ("timeout", "error"):
                retry.append(len(out))
        out.append([s, v])
    if retry:  # no answer in the answer text: look in the reasoning too
        again = grade_all([(full_response(out[j][0]["reasoning"], out[j][0]["content"]), by_id[out[j][0]["problem_id"]],
                            cfg.rel_tol, cfg.abs_tol) for j in retry], cfg.time_limit_s, cfg.workers)
        for j, v in zip(retry, again, strict=True):
            out[j][1] = v
    return pl.DataFrame([dict(sample_id=s["sample_id"], problem_id=s["problem_id"], teacher=s["teacher"],
                              variant=s["variant"], **vars(v)) for s, v in out], schema=SCHEMAS["verdicts"])
