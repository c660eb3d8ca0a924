"""Graders: plain functions from (response, problem) to a `Verdict` with a reason."""

import re
from dataclasses import dataclass
from fractions import Fraction

from tasks.extract import NUMBER, extract_choice, extract_free
from tasks.prompts import LETTERS


@dataclass
class Verdict:
    extracted: str | None
    correct: bool | None  # None: the gold answer cannot be judged
    grader: str
    reason: str


def to_number(s: str) -> float | None:
    """The first number in `s`: thousands separators, fractions and percent signs handled."""
    m = NUMBER.search(s.replace("\\frac{", "").replace("}{", "/"))
    if not m:
        return None
    token = m.group(0).replace(",", "").replace(" ", "")
    try:
        value = float(Fraction(token)) if "/" in token else float(token)
    except (ValueError, ZeroDivisionError):
        return None
    return value / 100 if s[m.end():].lstrip().startswith("%") else value


def grade_choice(response: str, problem: dict) -> Verdict:
    idx, how = extract_choice(response, problem["choices"])
    if idx is None:
        return Verdict(None, False, "choice_index", how)
    return Verdict(LETTERS[idx], idx == problem["answer_index"], "choice_index", how)


def grade_numeric(response: str, problem: dict, rel_tol: float, abs_tol: float) -> Verdict:
    gold = to_number(problem["answer"])
    if gold is None:
        return Verdict(None, None, "numeric", f"gold answer {problem['answer']!r} is not a number")
    text, how = extract_free(response)
    value = to_number(text) if text else None
    if value is None:
        return Verdict(text, False, "numeric", how if text is None else f"{how}: not a number")
    return Verdict(text, abs(value - gold) <= max(abs_tol, rel_tol * abs(gold)), "numeric", how)


def grade_free(response: str, problem: dict) -> Verdict:
    from mathruler.grader import grade_answer

    text, how = extract_free(response)
    if text is None:
        return Verdict(None, False, "mathruler", how)
    if re.sub(r"\s+", " ", text.lower()) == re.sub(r"\s+", " ", problem["answer"].lower()):
        return Verdict(text, True, "exact_match", how)
    return Verdict(text, bool(grade_answer(text, problem["answer"])), "mathruler", how)


def grade(response: str, problem: dict, rel_tol: float = 1e-4, abs_tol: float = 1e-6) -> Verdict:
    """Multiple choice by option index; numbers with a tolerance; anything else by mathruler."""
    if problem["answer_type"] == "multiple_choice":
        return grade_choice(response, problem)
    if problem["answer_type"] == "numeric":
        return grade_numeric(response, problem, rel_tol, abs_tol)
    return grade_free(response, problem)
