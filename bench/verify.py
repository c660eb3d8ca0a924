"""Free-form grading speed, as a rate and a ratio to multiple-choice grading, measured in one run.

    .venv/bin/python bench/verify.py [--items 20000]

Grades (a) multiple-choice responses, (b) free-form items with numeric-looking answers
(MathVista-like: "1.45", "25%", "1,200", a third of them wrong), (c) free-form LaTeX items that
only a parser can decide (a few hundred), all through `tasks.verify.grade_all`, the path the
verify stage and evaluation take. Prints items per second for each and (b)/(a).
"""

import argparse
import random
import time

from schemas.config import VerifyConfig
from tasks.verify import HEAVY, grade_all


def items_mc(n: int, rng: random.Random) -> list:
    p = {"answer_type": "multiple_choice", "choices": ["red", "blue", "green", "gold"], "answer_index": 2,
         "answer": "green", "question": "Which colour?"}
    return [(f"Looking closely... The answer is ({rng.choice('ABCD')}).", None, p) for _ in range(n)]


def items_numeric(n: int, rng: random.Random) -> list:
    out = []
    for i in range(n):
        gold = rng.choice([f"{i % 97}.{i % 89:02d}", f"{i % 50}%", f"{1000 + i:,}", str(i)])
        said = gold if i % 3 else f"{i % 13}.5"
        problem = {"answer_type": "free_form", "choices": [], "answer_index": None, "answer": gold,
                   "precision": 2 if "." in gold else None}
        out.append((f"We compute step by step. The answer is {said}.", None, problem))
    return out


def items_latex(n: int) -> list:
    p = {"answer_type": "free_form", "choices": [], "answer_index": None, "answer": "\\frac{1}{2}"}
    # sqrt(4 k^2) / (4 k) = 1/2: no number to read off, so only a parser (mathruler's sympy) decides
    return [(f"\\boxed{{\\frac{{\\sqrt{{{4 * k * k}}}}}{{{4 * k}}}}}", None, p) for k in range(1, n + 1)]


def rate(items: list) -> float:
    start = time.perf_counter()
    verdicts = grade_all(items, VerifyConfig(time_limit_s=10.0, workers=2))
    assert len(verdicts) == len(items)
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=20000)
    args = ap.parse_args()
    rng = random.Random(0)
    mc = rate(items_mc(args.items, rng))
    numeric = rate(items_numeric(args.items, rng))
    latex = rate(items_latex(300))
    HEAVY.close()
    print(f"multiple choice: {mc:,.0f} items/s")
    print(f"free form, numeric-looking answers: {numeric:,.0f} items/s  -> {numeric / mc:.2f} of multiple choice")
    print(f"free form, LaTeX decided by a parser (worker pool): {latex:,.0f} items/s")


if __name__ == "__main__":
    main()
