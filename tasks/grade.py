"""Graders: plain functions from (response, problem) to a `Verdict` with the grader and a reason.

- `choice_index`: multiple choice, by option index (letter or option text).
- `numeric`: numbers with relative/absolute tolerance, or to the problem's declared precision;
  thousands separators, fractions, LaTeX fractions, percents (25% matches 25 and 0.25) and units.
- free form: exact match against the answer or any alias (case, articles, punctuation and
  `\\text{}` ignored); a word answer is judged by that alone, because mathruler's unit stripping
  makes "mon" equal "monday"; then numbers; then mathruler `grade_answer` (never on an answer
  extracted as "None"); then math-verify, where installed, as a second opinion.
"""

import re
from dataclasses import dataclass

from schemas.config import VerifyConfig
from tasks.extract import NUMBER, SEPARATORS, TEXT_CMD, extract_choice, extract_free
from tasks.prompts import LETTERS

DEFAULT = VerifyConfig()  # the tolerances of a grade without a config: verify's defaults
LATEX_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{\s*([^{}]+?)\s*\}|(\d))\s*(?:\{\s*([^{}]+?)\s*\}|(\d))")  # \frac{1}{3}, \frac13
LEAD = re.compile(r"(?:about|approximately|around|roughly|[≈~$(*\s])*", re.IGNORECASE)  # may precede a number
GLUED = re.compile(r"\^(?!\\circ|\{\\circ\})|_|\{|\\(?!text|mathrm|%|,|;|!| |circ|degree)")  # may not follow it
NON_TEXT = re.compile(r"[^a-z0-9.\-/ ]+")
SPACES = re.compile(r"\s+")
LETTER = re.compile(r"[A-Za-z]")
NOT_WORD = re.compile(r"[\d\\^_{}=]")
ARTICLES = re.compile(r"\b(a|an|the)\b")
# A number alone, perhaps with a percent sign or a unit: "12", "-7/2", "25 %", "5 cm" (not "x^2+1").
NUMBER_ONLY = re.compile(r"^[-−]?(\d{1,3}([  ]\d{3})+|\d[\d,]*(\.\d+)?|\.\d+)([eE][-+]?\d+)?(\s*/\s*\d+)?\s*(\\?%|[A-Za-z][A-Za-z .]*)?$")


@dataclass
class Verdict:
    extracted: str | None
    correct: bool | None  # None: the gold answer cannot be judged (or grading timed out / failed)
    grader: str
    reason: str
    found_by: str = "none"  # how the answer was found: marker | boxed | option_text | closing_sentence | judge | none


def fractions(s: str) -> str:
    """LaTeX fractions as a/b: "\\frac{1}{3}", "\\dfrac13"."""
    return LATEX_FRAC.sub(lambda m: f"{m.group(1) or m.group(2)}/{m.group(3) or m.group(4)}", s)


def to_number(s: str) -> tuple[float, bool] | None:
    """(the first number in `s`, whether a percent sign follows it), or None."""
    s = fractions(s.replace("−", "-").replace("\\!", "").replace("{,}", ",")).strip()
    m = NUMBER.search(s)
    if not m or not LEAD.fullmatch(s[:m.start()]) or GLUED.match(s, m.end()):  # never a digit run cut out of
        return None  # LaTeX ("x^2", "2\\sqrt{2}") or out of a word ("AZYUK2A")
    token = SEPARATORS.sub("", m.group(0)).replace("−", "-")
    try:  # floats, not Fraction: Fraction("1e999999999/3") would build a billion-digit integer
        num, _, den = token.partition("/")
        value = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    rest = s[m.end():].lstrip()
    return value, rest.startswith("%") or rest.startswith("\\%") or rest.lower().startswith("percent")


def close(a: float, b: float, rel_tol: float, abs_tol: float, precision: int | None) -> bool:
    if precision is not None:
        return abs(a - b) <= 0.5 * 10 ** -precision + 1e-12
    return abs(a - b) <= max(abs_tol, rel_tol * abs(b))


def numbers_match(pred: tuple[float, bool], gold: tuple[float, bool], rel_tol, abs_tol, precision) -> bool:
    """Equal within tolerance, reading a percent on either side as itself or as a fraction."""
    (p, p_pct), (g, g_pct) = pred, gold
    options = [(p, g)] + ([(p / 100, g), (p, g / 100)] if p_pct or g_pct else [])
    return any(close(a, b, rel_tol, abs_tol, precision) for a, b in options)


def grade_choice(response: str, problem: dict) -> Verdict:
    idx, how = extract_choice(response, problem["choices"], problem.get("question") or "")
    if idx is None:
        return Verdict(None, False, "choice_index", "no option committed to", how)
    return Verdict(LETTERS[idx], idx == problem["answer_index"], "choice_index", how, how)


def grade_numeric(response: str, problem: dict, rel_tol: float, abs_tol: float) -> Verdict:
    golds = [g for g in (to_number(a) for a in [problem["answer"], *(problem.get("aliases") or [])]) if g]
    if not golds:
        return Verdict(None, None, "numeric", f"gold answer {problem['answer']!r} is not a number")
    text, how = extract_free(response)
    value = to_number(text) if text else None
    if value is None:
        return Verdict(text, False, "numeric", "no answer committed to" if text is None else f"{how}: not a number", how)
    ok = any(numbers_match(value, g, rel_tol, abs_tol, problem.get("precision")) for g in golds)
    return Verdict(text, ok, "numeric", how, how)


def normal(s: str) -> str:
    s = NON_TEXT.sub(" ", TEXT_CMD.sub(r"\1", s.lower()))
    return " ".join(ARTICLES.sub(" ", s).split()).strip(" .")


def same_text(text: str, gold: str) -> bool:
    """Words: equal after case, articles and punctuation; anything else: equal but for spacing."""
    if is_word(gold):
        return normal(text) == normal(gold)
    compact = lambda s: SPACES.sub("", s.lower()).strip("$").rstrip(".")  # noqa: E731
    return compact(text) == compact(gold)


def number_only(s: str) -> bool:
    return bool(NUMBER_ONLY.match(fractions(s.strip().strip("$")).strip()))


def is_word(s: str) -> bool:
    """An answer made of words only (no digits, no LaTeX): judged by exact match alone."""
    return bool(LETTER.search(s)) and not NOT_WORD.search(s)


def grade_free(response: str, problem: dict, rel_tol: float, abs_tol: float) -> Verdict:
    verdict = grade_free_rules(response, problem, rel_tol, abs_tol)
    return verdict if isinstance(verdict, Verdict) else grade_free_heavy(*verdict)


def grade_free_rules(response: str, problem: dict, rel_tol: float, abs_tol: float) -> Verdict | tuple:
    """The verdict where extraction, exact match, numbers, word answers and interval brackets decide it
    (fast, no parser); else (extracted text, found_by, gold answers) for `grade_free_heavy`."""
    golds = [problem["answer"], *(problem.get("aliases") or [])]
    text, how = extract_free(response)
    if text is None:
        return Verdict(None, False, "exact_match", "no answer committed to", how)
    if any(same_text(text, g) for g in golds):
        return Verdict(text, True, "exact_match", how, how)
    pred = to_number(text) if number_only(text) else None
    for g in golds:
        gold = to_number(g) if number_only(g) else None
        if pred and gold and numbers_match(pred, gold, rel_tol, abs_tol, problem.get("precision")):
            return Verdict(text, True, "numeric", how, how)
    if all(is_word(g) for g in golds):
        return Verdict(text, False, "exact_match", f"{how}: word answer differs", how)
    if text.strip().lower() in ("none", "null", ""):  # mathruler's stand-in for a missing \\boxed{}
        return Verdict(text, False, "mathruler", f"{how}: no answer", how)
    if pred and all(number_only(g) for g in golds):  # numbers on both sides, and they differ
        return Verdict(text, False, "numeric", how, how)
    if all(brackets(g) and brackets(g) != brackets(text) for g in golds):  # (0,9) is not [0,9)
        return Verdict(text, False, "exact_match", f"{how}: interval brackets differ", how)
    return text, how, golds


def brackets(s: str) -> str | None:
    """An interval's bracket pair ("[)" for "[0, 9)"), or None where `s` is no interval."""
    s = re.sub(r"\\(?:left|right)", "", s.strip().strip("$"))
    return s[0] + s[-1] if re.fullmatch(r"[\[(][^\[\]()]*,[^\[\]()]*[\])]", s) else None


def grade_free_heavy(text: str, how: str, golds: list[str]) -> Verdict:
    """mathruler's `grade_answer` (sympy), then math-verify: slow, so verify runs it in workers."""
    from mathruler.grader import grade_answer

    if any(grade_answer(text, g) for g in golds):
        return Verdict(text, True, "mathruler", how, how)
    if math_verify_agrees(text, golds):
        return Verdict(text, True, "math_verify", how, how)
    return Verdict(text, False, "mathruler", how, how)


def math_verify_agrees(text: str, golds: list[str]) -> bool:
    """math-verify's opinion where the package is installed; False where it is not."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return False
    try:
        pred = parse(f"${text}$")
        return any(verify(parse(f"${g}$"), pred) for g in golds)
    except Exception:  # noqa: BLE001  a second opinion that fails is no opinion
        return False


def grade(response: str, problem: dict, rel_tol: float = DEFAULT.rel_tol, abs_tol: float = DEFAULT.abs_tol) -> Verdict:
    """One item, inline and without a time limit: what `tasks.verify.grade_all` (the one grading entry
    point) runs per item. Multiple choice by option index; numbers with a tolerance; else free form.
    (The stages pass VerifyConfig's tolerances through grade_all; per-item callers get its defaults.)"""
    if problem["answer_type"] == "multiple_choice":
        return grade_choice(response, problem)
    if problem["answer_type"] == "numeric":
        return grade_numeric(response, problem, rel_tol, abs_tol)
    return grade_free(response, problem, rel_tol, abs_tol)
