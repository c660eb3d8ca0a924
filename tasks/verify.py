"""verify: a verdict for every sample (recomputable; asks a model only with `verify.judge`).

`grade_all(items, cfg, judge)` is the one grading entry point: verify, evaluation, the audit, the
judge's extraction and the GRPO reward all grade through it, with the same tolerances, time limit
and fallback (an answer the rules cannot read goes to the judge, if one is given). The reasoning
(a separate field or an inline `<think>`) is never graded: an answer there is tentative.
Multiple choice, numbers and the rule-based free-form paths (extraction, exact match, word
answers, numbers) run inline, thousands per second. What only a parser can decide (mathruler's
sympy, math-verify) goes to worker processes kept for the whole process (`HEAVY`), each item
within a time limit: pathological LaTeX cannot hang a run; an item past the limit gets a verdict
of None with the reason, the pool is replaced, and the rest go on.
"""

import atexit
import multiprocessing as mp
import threading

import polars as pl

from schemas.config import VerifyConfig
from schemas.tables import SCHEMAS
from tasks.grade import Verdict, grade, grade_free_heavy, grade_free_rules
from tasks.prompts import LETTERS
from tasks.teachers import Request, SamplingParams, split_think

Item = tuple[str, str | None, dict]  # (answer text, its separate reasoning or None, problem)
UNGRADED = ("timeout", "error")  # graders of a verdict on an answer that could not be graded


def safe(fn, *args) -> Verdict:
    """`fn(*args)`, with any exception turned into a verdict that says what went wrong."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001  a grader bug must not lose the shard
        return Verdict(None, None, "error", f"{type(e).__name__}: {e}"[:300])


def fast(response: str, problem: dict, rel_tol: float, abs_tol: float) -> Verdict | tuple:
    """The inline verdict, or the arguments of `grade_free_heavy` when only a parser can decide."""
    if problem["answer_type"] != "free_form":
        return safe(grade, response, problem, rel_tol, abs_tol)
    try:
        return grade_free_rules(response, problem, rel_tol, abs_tol)
    except Exception as e:  # noqa: BLE001
        return Verdict(None, None, "error", f"{type(e).__name__}: {e}"[:300])


class HeavyPool:
    """Worker processes for parser-based grading, kept between calls; one batch at a time."""

    def __init__(self):
        self.pool, self.workers, self.lock = None, 0, threading.Lock()

    def _pool(self, workers: int):
        if self.pool is None or self.workers != workers:
            self.close()
            self.pool, self.workers = mp.get_context("forkserver").Pool(workers), workers
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool = None

    def run(self, jobs: list[tuple], limit_s: float, workers: int, fn=grade_free_heavy) -> list[Verdict]:
        out: list[Verdict | None] = [None] * len(jobs)
        with self.lock:
            pending = list(range(len(jobs)))
            while pending:
                pool = self._pool(workers)
                futures = {i: pool.apply_async(safe, (fn, *jobs[i])) for i in pending}
                stuck = None
                for i in pending:
                    try:
                        out[i] = futures[i].get(timeout=limit_s)
                    except mp.TimeoutError:
                        stuck = i
                        break
                if stuck is not None:  # keep what finished meanwhile; the pool (and the stuck worker) goes
                    for i in pending:
                        if out[i] is None and i != stuck and futures[i].ready():
                            out[i] = futures[i].get()
                    out[stuck] = Verdict(None, None, "timeout", f"grading took longer than {limit_s:g} s")
                    self.close()
                pending = [i for i in pending if out[i] is None]
        return out


HEAVY = HeavyPool()
atexit.register(HEAVY.close)


def graded(pairs: list[tuple[str, dict]], cfg: VerifyConfig) -> list[Verdict]:
    """Verdicts for (response, problem) pairs in order: inline where rules decide, else in the worker
    pool, each within `cfg.time_limit_s`."""
    out = [fast(r, p, cfg.rel_tol, cfg.abs_tol) for r, p in pairs]
    heavy = [i for i, v in enumerate(out) if not isinstance(v, Verdict)]
    if heavy:
        for i, v in zip(heavy, HEAVY.run([out[i] for i in heavy], cfg.time_limit_s, cfg.workers), strict=True):
            out[i] = v
    return out


def parts(content: str, reasoning: str | None) -> tuple[str, str | None]:
    """(answer text, reasoning): an inline `<think>` block is reasoning, as a teacher's would be."""
    if reasoning is None and "think>" in content:
        reasoning, content = split_think(content)
    return content, reasoning


def unread(v: Verdict) -> bool:
    return v.extracted is None and v.grader not in UNGRADED and v.correct is not None


def grade_all(items: list[Item], cfg: VerifyConfig, judge=None) -> list[Verdict]:
    """The one grading entry point: a verdict per item, in order, on what the answer text commits to
    (never on its reasoning: a tentative answer there is no commitment); with a judge (a CachedTeacher
    for `cfg.judge`), answers the rules cannot read go to it."""
    out = graded([(parts(c, r)[0], p) for c, r, p in items], cfg)
    if judge is not None and (todo := [i for i, v in enumerate(out) if unread(v)]):
        for i, v in zip(todo, judge_extract(cfg, judge, [items[i] for i in todo]), strict=True):
            out[i] = v or out[i]
    return out


def extraction_request(cfg, response: str, problem: dict) -> Request:
    options = "".join(f"({LETTERS[i]}) {c}\n" for i, c in enumerate(problem["choices"] or []))
    prompt = cfg.prompt.format(question=problem.get("question") or "", options=f"Options:\n{options}" if options else "",
                               response=response)
    return Request((("user", prompt),), SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=cfg.max_new_tokens), 0)


def judge_extract(cfg: VerifyConfig, judge, items: list[Item]) -> list[Verdict | None]:
    """The judge's (`cfg.judge`) extraction of each response's final answer, graded by `grade_all`
    (None: it found none either, or its request failed)."""
    requests = [extraction_request(cfg.judge, parts(c, r)[0], p) for c, r, p in items]
    replies, _ = judge.complete(requests, desc="judge extraction")
    said = [(reply.content if reply else "").strip().strip("*").strip() for reply in replies]
    read = [i for i, s in enumerate(said) if s and not s.upper().startswith("NONE")]
    verdicts = grade_all([(f"The answer is {said[i]}", None, items[i][2]) for i in read], cfg)
    out: list[Verdict | None] = [None] * len(items)
    for i, v in zip(read, verdicts, strict=True):
        out[i] = Verdict(v.extracted, v.correct, f"judge:{judge.identity}", f"the judge read {said[i][:80]!r}", "judge")
    return out


def verify_shard(cfg: VerifyConfig, samples: pl.DataFrame, problems: pl.DataFrame, judge=None) -> pl.DataFrame:
    """A verdict per sample, through `grade_all`; with a judge (a CachedTeacher for `cfg.judge`),
    responses without an answer go to it."""
    by_id = {p["problem_id"]: p for p in problems.iter_rows(named=True)}
    rows = list(samples.iter_rows(named=True))
    known = [s for s in rows if s["problem_id"] in by_id]
    verdicts = iter(grade_all([(s["content"], s["reasoning"], by_id[s["problem_id"]]) for s in known], cfg, judge))
    out = [next(verdicts) if s["problem_id"] in by_id else Verdict(None, None, "none", "problem not in problems table")
           for s in rows]
    return pl.DataFrame([dict(sample_id=s["sample_id"], problem_id=s["problem_id"], teacher=s["teacher"],
                              variant=s["variant"], **vars(v)) for s, v in zip(rows, out, strict=True)],
                        schema=SCHEMAS["verdicts"])
