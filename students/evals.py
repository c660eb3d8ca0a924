"""Evaluation rows, however the answers were made (a local student, a reference model behind a
teacher backend): graded like teacher samples, and the reasoning of chain-of-thought answers
scored against the gold solution by a judge model or by ROUGE-L overlap.
"""

import re
from dataclasses import dataclass

import polars as pl

from schemas.config import JudgeConfig, VerifyConfig
from schemas.tables import SCHEMAS
from tasks.grade import Verdict
from tasks.teachers import Request, SamplingParams
from tasks.verify import UNGRADED, grade_all
from teacher_cache import CachedTeacher, CacheStats
from teacher_cache.prices import cost_usd


@dataclass
class Answer:
    text: str  # what is graded: the final answer text
    prompt_tokens: int
    generated_tokens: int
    latency_s: float
    cost_usd: float | None  # 0: a local model; None: a model with no known price
    reasoning: str | None  # a separate chain of thought (reasoning models behind an API)
    finished: bool | None  # False: cut by the token limit; None: the request failed
    failed: bool = False  # the request failed (its error is in the cache): counted wrong


def as_answer(a) -> Answer:
    """An `Answer`, or a (students.generate.Generated, seconds per answer) pair as one."""
    if isinstance(a, Answer):
        return a
    return Answer(a[0].text, a[0].prompt_tokens, a[0].new_tokens, a[1], 0.0, None, a[0].finished)


def counted(v: Verdict, a: Answer) -> bool | None:
    """The answer's correctness as evaluation counts it: null only where the gold cannot be judged;
    a failed request, a truncated answer, no answer and an ungradable one are wrong."""
    if v.correct is None and v.grader not in UNGRADED:
        return None
    return bool(v.correct) and not a.failed and bool(a.finished)


def eval_frame(problems: list[dict], answers: list, info: dict, k: int, verify: VerifyConfig,
               judge=None) -> pl.DataFrame:
    """Rows for `answers` (k per problem, problem-major; each an `Answer` or a (Generated, seconds)
    pair), graded by `grade_all` as verify grades samples; `judge`: a CachedTeacher for
    `verify.judge`. `info` holds the columns shared by every row."""
    answers = [as_answer(a) for a in answers]
    verdicts = grade_all([(a.text, a.reasoning, problems[i // k]) for i, a in enumerate(answers)], verify, judge)
    rows = []
    for i, (a, v) in enumerate(zip(answers, verdicts, strict=True)):
        p = problems[i // k]
        rows.append(info | dict(problem_id=p["problem_id"], split=p["split"], sample_index=i % k, response=a.text,
                                reasoning=a.reasoning, extracted=v.extracted, correct=counted(v, a),
                                grader="failed" if a.failed else v.grader, found_by=v.found_by,
                                finished=None if a.failed else a.finished,
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


JUDGE_WORD = re.compile(r"[\s*_`#>\"'(\[]*(INCORRECT|CORRECT)\b", re.I)
UNPARSED = "unparsed"  # beside the judge's identity where its reply opens with neither word


def judge_verdict(text: str) -> bool | None:
    """The judge's reply read strictly: it opens with the word CORRECT or INCORRECT, as the prompt asks;
    anything else ("Not correct.", "The reasoning is correct.", garbage) is unparsed: None."""
    m = JUDGE_WORD.match(text or "")
    return None if m is None else m.group(1).upper() == "CORRECT"


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
                        reasoning_judge=judge.identity if verdict is not None or reply is None
                        else f"{judge.identity} ({UNPARSED})")
    return pl.DataFrame(rows, schema=SCHEMAS["evals"]), stats


def reference_answers(prompts: list[str], model: CachedTeacher, max_new_tokens: int, k: int = 1,
                      temperature: float = 0.0, stop_at_answer: bool = False) -> tuple[list[Answer], CacheStats]:
    """A reference model's answers to `prompts` through the request engine and cache: greedy, or k
    samples each (prompt-major). `stop_at_answer`: for a local model, as students are stopped."""
    params = SamplingParams(temperature=temperature, top_p=1.0, max_new_tokens=max_new_tokens,
                            stop_at_answer=stop_at_answer)
    requests = [Request((("user", q),), params, i) for q in prompts for i in range(k)]
    got, stats = model.complete(requests, desc=f"reference {model.identity}")
    answers = [Answer("", 0, 0, 0.0, None, None, None, failed=True) if c is None else  # its error: in the cache
               Answer(c.content, c.prompt_tokens, c.completion_tokens, c.latency_s,
                      cost_usd(model.price, c.prompt_tokens, c.completion_tokens), c.reasoning,
                      c.finish_reason != "length") for c in got]
    return answers, stats


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 of whitespace tokens (lower case): longest common subsequence over both lengths."""
    from rapidfuzz.distance import LCSseq

    cand, ref = candidate.lower().split(), reference.lower().split()
    if not cand or not ref:
        return 0.0
    lcs = LCSseq.similarity(cand, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(cand), lcs / len(ref)
    return 2 * p * r / (p + r)
