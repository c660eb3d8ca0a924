"""Find the final answer a response *commits to*: an option index, or a free-form string, and how
it was found (`found_by`).

Only the visible text counts: `<think>` blocks and quoted attempts (a quoted span that itself holds
an answer sentence, as the `mistakes` arm quotes a wrong attempt, or an echoed prompt quotes "The
answer is (X).") are left out. The last commitment wins:

    boxed             the last `\\boxed{}` / `\\fbox{}`
    marker            the last "the answer is" / "Answer:" / 答案是 / 故选 sentence; a negated one
                      ("the answer is not (A)") commits to nothing
    closing_sentence  a lone final option ("B", "(B)", "... is D.", "I pick (B)."), a yes/no question
                      answered in the closing sentence; free form: the whole response when it is one
                      expression, else the last math span of the closing line, else the number the
                      closing sentence commits to ("is 12", "There are two ...")
    option_text       one option's text on the closing line ("It is green.")
    none              nothing committed: echoed option lists, numbers that merely occur

A letter counts only where it stands alone ("B", "(B)", "B.", "**B**"); "A mammal" is option text;
"70" is the option "70°". A digit run is never cut out of LaTeX or out of a word.
"""

import re

from tasks.prompts import LETTERS

_PHRASE = r"\s*[:：]?\s*(\$\$.*?\$\$|\\\[.*?\\\]|[^\n]*)"  # to the end of the line, or display math
# A marker commits only with its connector ("answer is", "Answer:", 答案是), or as the first word of a line
# followed by an answer ("Answer B", "Answer $$ 9 $$"). Matched at each keyword, from the last one back.
MARKER_AT = re.compile(rf"(?:(?:correct\s+(?:answer|option|choice)|answer)(?![a-z])\s*(?:\bis\b|:|=)"
                       rf"|(?:正确答案|答案)\s*(?:是|为|应为|应该是|:|：)|故选|应选){_PHRASE}", re.I | re.S)
LINE_MARKER_AT = re.compile(rf"answer(?![a-z])(?=\s*(?:\$|\\\[|(?-i:\(?[A-Z]\)?)(?:\W|$)|[-−]?\d)){_PHRASE}",
                            re.I | re.S)
KEYWORDS = ("answer", "correct", "答案", "故选", "应选")
KEYWORD = re.compile("|".join(KEYWORDS), re.I)
STRONG_LETTER = re.compile(r"^[\s*_`$]*(?:\\text\{)?[(\[]?([A-Z])[)\]]?\}?[\s*_`$]*(?:[.:,;)]|$|\s*[-–—]\s)")
BARE_LETTER = re.compile(r"^[\s*_`]*([A-Z])\b(?![’'])")
PAREN_LETTER = re.compile(r"[(（]([A-Z])[)）]")
# two option letters in a row: "A, B or C", "(A) or (B)", "A/B": naming several options commits to none
LETTER_LIST = re.compile(r"(?<![A-Za-z])[(（]?([A-Z])[)）]?\s*(?:,|/|\bor\b|\band\b)\s*[(（]?([A-Z])[)）]?(?![A-Za-z])")
# "... the length of CD is D.", "I pick (B)."
CLOSING_LETTER = re.compile(r"(?:\bis|\bbe|\bpick|\bchoose|\bselect|\bgo with|是|为|选)\s*[(（]?([A-Z])[)）]?\s*[.。!]?\s*$")
WORDS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
        "sixteen seventeen eighteen nineteen twenty".split()
NUMBER_WORD = re.compile(rf"\b(?:{'|'.join(WORDS)})\b", re.IGNORECASE)
COMMITTED_NUMBER = re.compile(r"(?:\bis|\bare|\bequals?|\bgives|=|:|是|为)\s*\$?\s*([-−]?\d{1,3}(?:[  ]\d{3})+(?![\d.,])"
                              rf"|[-−]?\d[\d,]*(?:\.\d+)?|{NUMBER_WORD.pattern})(?![\d^_{{}}\\])", re.IGNORECASE)
NEGATED = re.compile(r"^\W*(?:(?:definitely|certainly|clearly|surely|probably|obviously)\s+)?(?:not|never)\b", re.I)
NEGATION = re.compile(r"\b(?:not|no|never|none|neither|nor)\b|n't\b", re.IGNORECASE)
AUXILIARY = re.compile(r"^\s*(?:is|are|was|were|does|do|did|can|could|will|would|has|have|had|should)\s+", re.I)
# Thousands written with spaces ("1 000") first, then plain numbers, fractions, scientific notation.
NUMBER = re.compile(r"[-−]?\d{1,3}(?:[  ]\d{3})+(?![\d.,])|[-−]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\s*/\s*\d+)?"
                    r"|[-−]?\.\d+")
MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|\$([^$]+)\$", re.DOTALL)
THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)
QUOTED = re.compile(r"[\"“]([^\"”]*)[\"”]")
MARKDOWN = re.compile(r"[*_`]+")
TEXT_CMD = re.compile(r"\\text\{([^}]*)\}")
NON_WORD = re.compile(r"[^a-z0-9]+")
SEPARATORS = re.compile(r"[,  ]")  # thousands
SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|\n+")
CLAUSE_END = re.compile(r"(?<=[\d%°a-zA-Z$}])(?:[.。;；]\s|[.。]$|，|, (?=[a-z]))")
DELIMITERS = re.compile(r"^(?:\$+|\\[\[(])|(?:\$+|\\[\])])?[.\s]*$")  # math delimiters, a closing full stop
WORD_AND_NOUN = re.compile(rf"{NUMBER_WORD.pattern}(?:\s+[A-Za-z]+)?", re.IGNORECASE)
EQUATION = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(.+)")  # "k = 1/3": its right side
COMMAND = re.compile(r"\\[A-Za-z]+")
WORD_RUN = re.compile(r"[A-Za-z]{2,}")
NUMBER_UNIT = re.compile(r"[-−]?[\d.,]+\s*[A-Za-z]{1,3}")


def visible(text: str) -> str:
    """The text a response commits in: without `<think>` blocks (an unclosed one runs to the end; a
    `</think>` without its opening closes reasoning that began at the start) and quoted attempts."""
    if "think>" in text:
        head, tag, tail = text.rpartition("</think>")
        text = THINK.sub(" ", tail if tag and "<think>" not in head else text)
    if '"' in text or "“" in text:
        text = QUOTED.sub(lambda m: " " if commits(m.group(1)) else m.group(0), text)
    return text


def commits(text: str) -> bool:
    """Whether a quoted span holds an answer of its own (a marker sentence or a \\boxed{}): a quoted attempt."""
    return "\\boxed" in text or "\\fbox" in text or any(MARKER_AT.match(text, k) for k in keyword_starts(text))


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


def answer_phrases(text: str) -> list[str]:
    """What follows each committing "the answer is" / "Answer:" (to the end of its line, or its display
    math), the last first, back to the last negated one ("the answer is not (A)"), which ends the list."""
    if "*" in text or "_" in text or "`" in text:
        text = MARKDOWN.sub("", text)
    out = []
    for k in reversed(keyword_starts(text)):
        m = MARKER_AT.match(text, k) or (line_start(text, k) and LINE_MARKER_AT.match(text, k))
        if m and m.group(1).strip():
            if NEGATED.match(m.group(1).strip()):
                break
            out.append(m.group(1).strip())
    return out


def keyword_starts(text: str) -> list[int]:
    """Where a marker's keyword begins, in order (str.find: a regex scan is the grader's slowest step)."""
    low = text.lower()
    if len(low) != len(text):  # lower() changed a length: positions would not match
        return [m.start() for m in KEYWORD.finditer(text)]
    out = []
    for word in KEYWORDS:
        i = low.find(word)
        while i >= 0:
            out.append(i)
            i = low.find(word, i + 1)
    return sorted(out)


def line_start(text: str, k: int) -> bool:
    return not text[text.rfind("\n", 0, k) + 1:k].strip(" \t#>")


def norm(s: str) -> str:
    return NON_WORD.sub(" ", TEXT_CMD.sub(r"\1", s).lower()).strip()


def option_hits(phrase: str, choices: list[str]) -> list[int]:
    p = f" {norm(phrase)} "
    return [i for i, c in enumerate(choices) if norm(c) and f" {norm(c)} " in p]


def letter(m: re.Match | None, choices: list[str]) -> int | None:
    return LETTERS.index(m.group(1)) if m and LETTERS.index(m.group(1)) < len(choices) else None


def choice_index(phrase: str, choices: list[str]) -> int | None:
    """In a committed phrase: an option letter standing alone, else an option's text (the longest
    one mentioned), else a bare leading letter ("B because ..."); an echoed option list is none."""
    phrase = phrase.strip()
    if echoed(phrase, choices) or several(phrase):  # "(A) or (C)": no one option
        return None
    if (idx := letter(STRONG_LETTER.match(phrase), choices)) is not None:
        return idx
    if hits := option_hits(phrase, choices):
        return max(hits, key=lambda i: len(norm(choices[i])))  # the longest match is the specific one
    if (idx := letter(BARE_LETTER.match(phrase), choices)) is not None:
        return idx
    return numeric_choice(phrase, choices)


def several(text: str) -> bool:
    """Whether a phrase names more than one option letter ("(A)(B)(C)", "A, B or C", "(A) or (B)")."""
    return len(set(PAREN_LETTER.findall(text))) > 1 or bool(LETTER_LIST.search(text))


def echoed(text: str, choices: list[str]) -> bool:
    """The option list copied out ("(A) cat (B) shark"): two options or more written with their letters."""
    low = text.lower()
    return sum(f"({LETTERS[i]}) {c}".lower() in low for i, c in enumerate(choices)) >= 2


def leading_number(s: str) -> float | None:
    m = NUMBER.search(s.replace("−", "-"))
    if not m or s[:m.start()].strip(" $(*"):  # a number that leads the text, units or not after it
        return None
    try:
        return float(SEPARATORS.sub("", m.group(0)).split("/")[0])
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
    return [x.strip() for x in SENTENCE_END.split(text.strip()) if x.strip()]


def yes_no(text: str, question: str, choices: list[str]) -> int | None:
    """A yes/no question answered in prose: the closing sentence says yes or no, or restates the
    question's claim (negated: no; as asked: yes)."""
    labels = [norm(c) for c in choices]
    if sorted(labels) != ["no", "yes"] or not question or not text.strip():
        return None
    closing = sentences(text)[-1]
    words = set(norm(closing).split())
    if ("yes" in words) != ("no" in words):
        return labels.index("yes" if "yes" in words else "no")
    claim = [w for w in norm(AUXILIARY.sub("", question)).split() if len(w) > 2]
    if not claim or sum(w in words for w in claim) < 0.7 * len(claim):
        return None
    flipped = bool(NEGATION.search(closing)) != bool(NEGATION.search(question))
    return labels.index("no" if flipped else "yes")


def closing_choice(text: str, choices: list[str], question: str) -> tuple[int | None, str]:
    """Without a marker: a lone final option, a yes/no closing sentence, or one option's text on
    the closing line (not negated, not one of several)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return None, "none"
    last = MARKDOWN.sub("", lines[-1]).strip()
    if echoed(last, choices):
        return None, "none"
    strong = None if several(last) else STRONG_LETTER.match(last)  # a letter list is no lone option
    if (idx := letter(strong or CLOSING_LETTER.search(last), choices)) is not None:
        return idx, "closing_sentence"
    if (idx := yes_no(text, question, choices)) is not None:
        return idx, "closing_sentence"
    closing = sentences(last)[-1] if last else ""
    hits = option_hits(closing, choices)
    if len(hits) == 1 and not NEGATION.search(closing) and len(set(PAREN_LETTER.findall(closing))) <= 1:
        return hits[0], "option_text"
    if (idx := numeric_choice(closing, choices)) is not None:
        return idx, "option_text"
    return None, "none"


def extract_choice(text: str, choices: list[str], question: str) -> tuple[int | None, str]:
    """(option index, found_by); (None, "none") when the response commits to none. Markers are read
    from the last back to the first that names an option ("The answer is A. BECAUSE: ... the correct
    choice is the first one" is A)."""
    text = visible(text)
    if (b := boxed(text)) and (idx := choice_index(b, choices)) is not None:
        return idx, "boxed"
    for phrase in answer_phrases(text):
        if (idx := choice_index(phrase, choices)) is not None:
            return idx, "marker"
    return closing_choice(text, choices, question)


def digits(word: str) -> str:
    """"two" -> "2" (a number word the closing sentence commits to); digits stay as they are."""
    return str(WORDS.index(word.lower())) if word.lower() in WORDS else word


def expression(s: str) -> str:
    """A committed span as the expression it is: math delimiters and a closing full stop dropped, a
    leading number word as digits, "k = 1/3" as its right side."""
    s = DELIMITERS.sub("", s.strip()).strip()
    if s[:1].isalpha() and WORD_AND_NOUN.fullmatch(s):  # "two", "two sequences"
        s = NUMBER_WORD.sub(lambda m: digits(m.group(0)), s, count=1)
    m = EQUATION.fullmatch(s) if "=" in s else None
    return m.group(1).strip() if m else s


def one_expression(text: str) -> bool:
    """The whole response is one expression: no words (two letters or more outside LaTeX commands),
    no sentence; "12", "\\frac13", "x^2+1", "(0, 9]", "12 cm" are."""
    core = COMMAND.sub("", text.strip().strip("$"))
    if not core or "\n" in text.strip() or core.count("{") != core.count("}"):  # "\\boxed{\\frac{1}{2": cut off
        return False
    return not WORD_RUN.search(core) or bool(NUMBER_UNIT.fullmatch(core))


def marker_clause(phrase: str) -> str:
    """A marker phrase's first clause: "12. This is because ..." is 12; a math span as written."""
    if m := MATH_SPAN.match(phrase.strip()):
        return next(g for g in m.groups() if g is not None)
    return CLAUSE_END.split(phrase, maxsplit=1)[0]


def closing_free(text: str) -> tuple[str | None, str]:
    """Without a marker: the whole response as one expression, else what the closing sentence commits
    to last: its last math span, or the number it says something is ("the total is 12 apples, less
    than 20": 12; "There are two ...": 2)."""
    if one_expression(text):
        return expression(text), "closing_sentence"
    closing = sentences(text)[-1] if text.strip() else ""
    found = [(m.end(), expression(next(g for g in m.groups() if g is not None))) for m in MATH_SPAN.finditer(closing)]
    found += [(m.end(), digits(m.group(1))) for m in COMMITTED_NUMBER.finditer(closing)]
    found = [f for f in found if f[1]]
    return (max(found, key=lambda f: f[0])[1], "closing_sentence") if found else (None, "none")


def extract_free(text: str) -> tuple[str | None, str]:
    """(answer string, found_by): boxed beats the marker beats the closing sentence."""
    text = visible(text)
    if b := boxed(text):
        return expression(b), "boxed"
    if phrase := next(iter(answer_phrases(text)), None):  # the last committing marker's, unless negated
        return expression(marker_clause(phrase)), "marker"
    return closing_free(text)
