"""Find the final answer a response commits to: an option index, or a free-form string."""

import re

from tasks.prompts import LETTERS

ANSWER_IS = re.compile(r"(?:final\s+)?answer\s*(?:is|:|=)\s*:?\s*(.+)", re.IGNORECASE)
LETTER = re.compile(r"^\(?\*{0,2}([A-Z])\*{0,2}\)?(?:[\s.,:;)*]|$)")
PAREN_LETTER = re.compile(r"\(([A-Z])\)")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")


def boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, with nested braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j].strip()
    return None


def answer_phrase(text: str) -> str | None:
    """What follows the last "the answer is", up to the end of that line."""
    matches = list(ANSWER_IS.finditer(text))
    return matches[-1].group(1).strip() if matches else None


def norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def choice_index(phrase: str, choices: list[str]) -> int | None:
    """An option letter at the start of `phrase`, else an option's text inside it."""
    m = LETTER.match(phrase.strip())
    if m and LETTERS.index(m.group(1)) < len(choices):
        return LETTERS.index(m.group(1))
    p = norm(phrase)
    hits = [i for i, c in enumerate(choices) if norm(c) and (norm(c) == p or f" {norm(c)} " in f" {p} ")]
    return max(hits, key=lambda i: len(choices[i])) if hits else None  # the longest match is the specific one


def extract_choice(text: str, choices: list[str]) -> tuple[int | None, str]:
    """(option index, how it was found); (None, reason) when the response commits to none."""
    for how, phrase in (("boxed", boxed(text)), ("answer_is", answer_phrase(text))):
        if phrase:
            idx = choice_index(phrase, choices)
            if idx is not None:
                return idx, how
    letters = [LETTERS.index(x) for x in PAREN_LETTER.findall(text) if LETTERS.index(x) < len(choices)]
    if letters:
        return letters[-1], "last_option_letter"
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        idx = choice_index(lines[-1], choices)
        if idx is not None:
            return idx, "last_line"
    return None, "no_option_found"


def extract_free(text: str) -> tuple[str | None, str]:
    """(answer string, how); boxed beats "the answer is" beats the last number."""
    b = boxed(text)
    if b:
        return b, "boxed"
    phrase = answer_phrase(text)
    if phrase:
        return re.sub(r"[.\s]+$", "", phrase), "answer_is"
    numbers = NUMBER.findall(text)
    if numbers:
        return numbers[-1], "last_number"
    return None, "no_answer_found"
