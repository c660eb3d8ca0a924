"""verify: a verdict for every sample (recomputable; asks a model only with `verify.judge`).

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
from tasks.teachers import Request, SamplingParams

Item = tuple[str, dict, float, float]  # (response, problem, rel_tol, abs_tol)


def full_response(reasoning: str | None, content: str) -> str:
    return content if not reasoning else f"{reasoning}\n{content}"


def safe(fn, *args) -> Verdict:
    """`fn(*args)`, with any exception turned into a verdict that says what went wrong."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001  a grader bug must not lose the shard
        return Verdict(None, None, "error", f"{type(e).__name__}: {e}"[:300])


def safe_grade(item: Item) -> Verdict:
    return safe(grade, *item)


def fast(item: Item) -> Verdict | tuple:
    """The inline verdict, or the arguments of `grade_free_heavy` when only a parser can decide."""
    response, problem, rel_tol, abs_tol = item
    if problem["answer_type"] != "free_form":
        return safe(grade, *item)
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


def grade_all(items: list[Item], limit_s: float = 10.0, workers: int = 2) -> list[Verdict]:
    """Verdicts for items in order: inline where rules decide, else in the worker pool, each within `limit_s`."""
    out = [fast(it) for it in items]
    heavy = [i for i, v in enumerate(out) if not isinstance(v, Verdict)]
    if heavy:
        for i, v in zip(heavy, HEAVY.run([out[i] for i in heavy], limit_s, workers), strict=True):
            out[i] = v
    return out


def extraction_request(cfg, response: str, problem: dict) -> Request:
    options = "".join(f"({LETTERS[i]}) {c}\n" for i, c in enumerate(problem["choices"] or []))
    prompt = cfg.prompt.format(question=problem.get("question") or "", options=f"Options:\n{options}" if options else "",
                               response=response)
    return Request((("user", prompt),), SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=cfg.max_new_tokens), 0)


def judge_extract(cfg, judge, items: list[Item]) -> list[Verdict | None]:
    """The judge's extraction of each response's final answer, graded by the rules (None: it found
    none either, or its request failed)."""
    replies, _ = judge.complete([extraction_request(cfg, r, p) for r, p, *_ in items], desc="judge extraction")
    out = []
    for (_, problem, rel_tol, abs_tol), reply in zip(items, replies, strict=True):
        said = (reply.content if reply else "").strip().strip("*").strip()
        if not said or said.upper().startswith("NONE"):
            out.append(None)
            continue
        v = safe(grade, f"The answer is {said}", problem, rel_tol, abs_tol)
        out.append(Verdict(v.extracted, v.correct, f"judge:{judge.identity}", f"the judge read {said[:80]!r}"))
    return out


def verify_shard(cfg: VerifyConfig, samples: pl.DataFrame, problems: pl.DataFrame, judge=None) -> pl.DataFrame:
    """Graded on the answer text; the reasoning is consulted only if the answer text has none;
    with a judge (a CachedTeacher for `cfg.judge`), responses still without an answer go to it."""
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
    if judge is not None:
        unread = [j for j, (s, v) in enumerate(out) if v.extracted is None and v.grader not in ("timeout", "error", "none")]
        items = [(out[j][0]["content"], by_id[out[j][0]["problem_id"]], cfg.rel_tol, cfg.abs_tol) for j in unread]
        for j, v in zip(unread, judge_extract(cfg.judge, judge, items), strict=True):
            if v is not None:
                out[j][1] = v
    return pl.DataFrame([dict(sample_id=s["sample_id"], problem_id=s["problem_id"], teacher=s["teacher"],
                              variant=s["variant"], **vars(v)) for s, v in out], schema=SCHEMAS["verdicts"])
