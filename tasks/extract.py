"""Find the final answer a response commits to: an option index, or a free-form string.

The last committed answer wins: `\\boxed{}` first, then the last "the answer is" / "Answer:",
then a lone option on the last line, then the last option letter in parentheses. A letter
counts only where it stands alone ("B", "(B)", "B.", "**B**"); "A mammal" is option text.
"""

import re

from tasks.prompts import LETTERS

# A lookahead, so every occurrence is found even when an earlier one's line contains a later one.
ANSWER_IS = re.compile(r"(?=(?:final\s+answer|answer|correct\s+(?:option|choice)|choice|option)\s*(?:is|:|=)\s*:?\s*"
                       r"([^\n]+))", re.IGNORECASE)
STRONG_LETTER = re.compile(r"^[\s*_`$]*(?:\\text\{)?[(\[]?([A-Z])[)\]]?\}?[\s*_`$]*(?:[.:,;)]|$|\s*[-–—]\s)")
BARE_LETTER = re.compile(r"^[\s*_`]*([A-Z])\b")
PAREN_LETTER = re.compile(r"\(([A-Z])\)")
NUMBER = re.compile(r"[-−]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\s*/\s*\d+)?|[-−]?\.\d+")
MARKDOWN = re.compile(r"[*_`]+")


def boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), with nested braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j].strip()
    return None


def answer_phrase(text: str) -> str | None:
    """What follows the last "the answer is" / "Answer:", up to the end of that line."""
    matches = [m for m in ANSWER_IS.finditer(MARKDOWN.sub("", text)) if m.group(1).strip()]
    return matches[-1].group(1).strip() if matches else None


def norm(s: str) -> str:
    s = re.sub(r"\\text\{([^}]*)\}", r"\1", s)
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def choice_index(phrase: str, choices: list[str]) -> int | None:
    """An option letter standing alone, else an option's text, else a bare leading letter."""
    phrase = phrase.strip()
    m = STRONG_LETTER.match(phrase)
    if m and LETTERS.index(m.group(1)) < len(choices):
        return LETTERS.index(m.group(1))
    p = norm(phrase)
    hits = [i for i, c in enumerate(choices) if norm(c) and (norm(c) == p or f" {norm(c)} " in f" {p} ")]
    if hits:
        return max(hits, key=lambda i: len(norm(choices[i])))  # the longest match is the specific one
    m = BARE_LETTER.match(phrase)  # "B because ..."
    if m and LETTERS.index(m.group(1)) < len(choices):
        return LETTERS.index(m.group(1))
    return None


def extract_choice(text: str, choices: list[str]) -> tuple[int | None, str]:
    """(option index, how it was found); (None, reason) when the response commits to none."""
    for how, phrase in (("boxed", boxed(text)), ("answer_is", answer_phrase(text))):
        if phrase:
            idx = choice_index(phrase, choices)
            if idx is not None:
                return idx, how
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        m = STRONG_LETTER.match(MARKDOWN.sub("", lines[-1]).strip())
        if m and LETTERS.index(m.group(1)) < len(choices):
            return LETTERS.index(m.group(1)), "last_line"
    letters = [LETTERS.index(x) for x in PAREN_LETTER.findall(text) if LETTERS.index(x) < len(choices)]
    if letters:
        return letters[-1], "last_option_letter"
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
        phrase = re.sub(r"^\$+|\$+$", "", re.sub(r"[.\s]+$", "", phrase)).strip()
        return phrase, "answer_is"
    numbers = NUMBER.findall(text)
    if numbers:
        return numbers[-1], "last_number"
    return None, "no_answer_found"
