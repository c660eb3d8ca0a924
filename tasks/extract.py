"""Find the final answer a response commits to: an option index, or a free-form string.

The last committed answer wins: `\\boxed{}` first, then the last "the answer is" / "Answer:"
(or 答案 / 故选 in Chinese), then a closing "... is D." or a lone option on the last line,
then the last option letter in parentheses; a yes/no question answered in prose is read from
the closing sentence. A letter counts only where it stands alone ("B", "(B)", "B.", "**B**");
"A mammal" is option text; "70" is the option "70°". Without a marker, a free-form answer is
the number the closing sentence commits to ("is 12", "= 12"), else the last number.
"""

import re

from tasks.prompts import LETTERS

# A lookahead, so every occurrence is found even when an earlier one's line contains a later one.
ANSWER_IS = re.compile(r"(?=(?:final\s+answer|answer|correct\s+(?:option|choice)|choice|option|答案|正确答案|故选|应选|选项)"
                       r"\s*(?:is|:|=|：|是|为|应为|应该是)?\s*[:：]?\s*([^\n]+))", re.IGNORECASE)
STRONG_LETTER = re.compile(r"^[\s*_`$]*(?:\\text\{)?[(\[]?([A-Z])[)\]]?\}?[\s*_`$]*(?:[.:,;)]|$|\s*[-–—]\s)")
BARE_LETTER = re.compile(r"^[\s*_`]*([A-Z])\b")
PAREN_LETTER = re.compile(r"[(（]([A-Z])[)）]")
CLOSING_LETTER = re.compile(r"(?:\bis|\bbe|是|为|选)\s*[(（]?([A-Z])[)）]?\s*[.。!]?\s*$")  # "... the length of CD is D."
COMMITTED_NUMBER = re.compile(r"(?:\bis|\bare|\bequals?|\bgives|=|:|是|为)\s*\$?\s*([-−]?\d[\d,]*(?:\.\d+)?)")
NEGATION = re.compile(r"\b(?:not|no|never|none|neither|nor)\b|n't\b", re.IGNORECASE)
AUXILIARY = re.compile(r"^\s*(?:is|are|was|were|does|do|did|can|could|will|would|has|have|had|should)\s+", re.I)
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
    return numeric_choice(phrase, choices)


def leading_number(s: str) -> float | None:
    m = NUMBER.search(s.replace("−", "-"))
    if not m or s[:m.start()].strip(" $(*"):  # a number that leads the text, units or not after it
        return None
    try:
        return float(m.group(0).replace(",", "").split("/")[0])
    except ValueError:
        return None


def numeric_choice(phrase: str, choices: list[str]) -> int | None:
    """The one option whose number is the phrase's number ("70" is "70°", "6 cm" is "6cm")."""
    value = leading_number(phrase)
    if value is None:
        return None
    hits = [i for i, c in enumerate(choices) if leading_number(c) == value]
    return hits[0] if len(hits) == 1 else None


def sentences(text: str) -> list[str]:
    return [x.strip() for x in re.split(r"(?<=[.!?。])\s+|\n+", text.strip()) if x.strip()]


def yes_no(text: str, question: str, choices: list[str]) -> int | None:
    """A yes/no question answered in prose: the closing sentence says yes or no, or restates the
    question's claim (negated: no; as asked: yes)."""
    labels = [norm(c) for c in choices]
    if sorted(labels) != ["no", "yes"] or not question:
        return None
    closing = sentences(text)[-1] if text.strip() else ""
    words = set(norm(closing).split())
    if ("yes" in words) != ("no" in words):
        return labels.index("yes" if "yes" in words else "no")
    claim = [w for w in norm(AUXILIARY.sub("", question)).split() if len(w) > 2]
    if not claim or sum(w in words for w in claim) < 0.7 * len(claim):
        return None
    flipped = bool(NEGATION.search(closing)) != bool(NEGATION.search(question))
    return labels.index("no" if flipped else "yes")


def extract_choice(text: str, choices: list[str], question: str = "") -> tuple[int | None, str]:
    """(option index, how it was found); (None, reason) when the response commits to none."""
    for how, phrase in (("boxed", boxed(text)), ("answer_is", answer_phrase(text))):
        if phrase:
            idx = choice_index(phrase, choices)
            if idx is not None:
                return idx, how
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        last = MARKDOWN.sub("", lines[-1]).strip()
        m = STRONG_LETTER.match(last) or CLOSING_LETTER.search(last)
        if m and LETTERS.index(m.group(1)) < len(choices):
            return LETTERS.index(m.group(1)), "last_line"
        idx = yes_no(text, question, choices)
        if idx is not None:
            return idx, "yes_no_prose"
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
        phrase = re.split(r"(?<=[\d%°a-zA-Z$}])(?:[.。;；]\s|[.。]$|，|, (?=[a-z]))", phrase, maxsplit=1)[0]  # its first clause
        phrase = re.sub(r"^\$+|\$+$", "", re.sub(r"[.\s]+$", "", phrase)).strip()
        return phrase, "answer_is"
    closing = sentences(text)[-1] if text.strip() else ""
    committed = COMMITTED_NUMBER.findall(closing)
    if committed:  # "the total is 12 apples, less than 20": 12, not the last number
        return committed[-1], "committed_number"
    numbers = NUMBER.findall(text)
    if numbers:
        return numbers[-1], "last_number"
    return None, "no_answer_found"
