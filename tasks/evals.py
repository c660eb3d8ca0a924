"""Evaluation rows, however the answers were made (a local student, a reference model behind a
teacher backend): graded like teacher samples, and the reasoning of chain-of-thought answers
scored against the gold solution by a judge model or by ROUGE-L overlap.
"""

import re
from dataclasses import dataclass

import polars as pl

from reports.stats import rouge_l
from schemas.config import JudgeConfig, VerifyConfig
from schemas.tables import SCHEMAS
from tasks.teachers import Request, SamplingParams
from tasks.teachers.prices import cost_usd
from tasks.verify import grade_all
from teacher_cache import CachedTeacher, CacheStats


@dataclass
class Answer:
    text: str  # what is graded: the final answer text
    prompt_tokens: int
    generated_tokens: int
    latency_s: float
    cost_usd: float | None = 0.0  # 0: a local model; None: a model with no known price
    reasoning: str | None = None  # a separate chain of thought (reasoning models behind an API)
    failed: bool = False  # the request failed (its error is in the cache): not graded


def eval_frame(problems: list[dict], answers: list, info: dict, k: int,
               verify: VerifyConfig | None = None) -> pl.DataFrame:
    """Rows for `answers` (k per problem, problem-major): each an `Answer`, or a (students.generate.
    Generated, seconds per answer) pair, graded as `verify` grades samples (tolerances, time limit).
    `info` holds the columns shared by every row."""
    cfg = verify or VerifyConfig()
    answers = [a if isinstance(a, Answer) else Answer(a[0].text, a[0].prompt_tokens, a[0].new_tokens, a[1])
               for a in answers]
    verdicts = grade_all([(a.text, problems[i // k], cfg.rel_tol, cfg.abs_tol) for i, a in enumerate(answers)],
                         cfg.time_limit_s, cfg.workers)
    rows = []
    for i, (a, v) in enumerate(zip(answers, verdicts, strict=True)):
        p = problems[i // k]
        rows.append(info | dict(problem_id=p["problem_id"], split=p["split"], sample_index=i % k, response=a.text,
                                reasoning=a.reasoning, extracted=v.extracted, correct=None if a.failed else v.correct,
                                grader="failed" if a.failed else v.grader,
                                prompt_tokens=a.prompt_tokens, generated_tokens=a.generated_tokens,
                                latency_s=a.latency_s, cost_usd=a.cost_usd, reasoning_score=None,
                                reasoning_correct=None, reasoning_judge=None))
    return pl.DataFrame(rows, schema=SCHEMAS["evals"])


def judged_text(row: dict) -> str:
    return f"{row['reasoning']}\n{row['response']}" if row.get("reasoning") else row["response"]


def rouge_reasoning(evals: pl.DataFrame, problems: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """Chain-of-thought answers scored by ROUGE-L F1 with the gold solution (null without one)."""
    solutions = dict(zip(problems["problem_id"], problems["solution"], strict=True))
    scores = [rouge_l(judged_text(r), solutions[r["problem_id"]])
              if r["prompt_style"] == "cot" and solutions.get(r["problem_id"]) else None
              for r in evals.iter_rows(named=True)]
    score = pl.Series("reasoning_score", scores, dtype=pl.Float64)
    return evals.with_columns(score, (score >= threshold).alias("reasoning_correct"),
                              pl.when(score.is_not_null()).then(pl.lit(f"rouge-l>={threshold}"))
                              .otherwise(None).alias("reasoning_judge"))


VERDICT = re.compile(r"\b(INCORRECT|CORRECT|YES|NO)\b", re.I)


def judge_verdict(text: str) -> bool | None:
    """The judge's reply as a verdict: its first CORRECT / INCORRECT / yes / no; None if none."""
    m = VERDICT.search(text or "")
    return None if m is None else m.group(1).upper() in ("CORRECT", "YES")


def judge_reasoning(evals: pl.DataFrame, problems: pl.DataFrame, cfg: JudgeConfig,
                    judge: CachedTeacher) -> tuple[pl.DataFrame, CacheStats]:
    """Greedy chain-of-thought answers judged against the gold solution, one cached request each."""
    by_id = {p["problem_id"]: p for p in problems.iter_rows(named=True)}
    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=cfg.max_new_tokens)
    todo = [i for i, r in enumerate(evals.iter_rows(named=True))
            if r["prompt_style"] == "cot" and r["decoding"] == "greedy" and by_id[r["problem_id"]]["solution"]]
    rows = evals.to_dicts()
    requests = [Request((("user", cfg.prompt.format(question=by_id[rows[i]["problem_id"]]["question"],
                                                    solution=by_id[rows[i]["problem_id"]]["solution"],
                                                    response=judged_text(rows[i]))),), params, 0) for i in todo]
    replies, stats = judge.complete(requests, desc="judging reasoning")
    for i, reply in zip(todo, replies, strict=True):
        verdict = None if reply is None else judge_verdict(reply.content)
        rows[i] |= dict(reasoning_correct=verdict, reasoning_score=None if verdict is None else float(verdict),
                        reasoning_judge=judge.identity)
    return pl.DataFrame(rows, schema=SCHEMAS["evals"]), stats


def reference_answers(prompts: list[str], model: CachedTeacher, max_new_tokens: int, k: int = 1,
                      temperature: float = 0.0, stop_at_answer: bool = False) -> tuple[list[Answer], CacheStats]:
    """A reference model's answers to `prompts` through the request engine and cache: greedy, or k
    samples each (prompt-major). `stop_at_answer`: for a local model, as students are stopped."""
    params = SamplingParams(temperature=temperature, top_p=1.0, max_new_tokens=max_new_tokens,
                            stop_at_answer=stop_at_answer)
    requests = [Request((("user", q),), params, i) for q in prompts for i in range(k)]
    got, stats = model.complete(requests, desc=f"reference {model.identity}")
    answers = [Answer("", 0, 0, 0.0, None, failed=True) if c is None else  # its error: in the cache
               Answer(c.content, c.prompt_tokens, c.completion_tokens, c.latency_s,
                      cost_usd(model.price, c.prompt_tokens, c.completion_tokens), c.reasoning) for c in got]
    return answers, stats
