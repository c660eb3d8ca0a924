"""The answers and token counts a response cell of a traces file holds, in the shapes tools and
providers write them (import-traces reads these; the teachers parse live responses themselves).

The provider parsers (`openai_compat.completions`, `gemini.completions`) are not reused here: they
read one well-formed response object, while a cell may be a string, a list, a chat, a legacy
`text` choice or a Gemini batch line in JSON (camelCase), a row's own token columns win over the
usage it reports, and empty answers are dropped before tokens are shared out.
"""

from dataclasses import dataclass

OUT_TOKENS = ("completion_tokens", "output_tokens", "num_output_tokens", "response_tokens")
IN_TOKENS = ("prompt_tokens", "input_tokens", "num_input_tokens")


@dataclass(frozen=True)
class Answer:
    content: str
    reasoning: str | None = None
    finish_reason: str | None = None


FINISH = {"max_tokens": "length", "length": "length", "stop": "stop", "end_turn": "stop"}


def answers_of(value) -> list[Answer]:
    """The answers a response cell holds: a string; a list of them; a chat (its last assistant
    turn); an OpenAI chat completion, bare or as a batch-output `response` ({"body": ...}); a
    Gemini response or batch-output line ({"candidates": ...}); vLLM outputs ([{"text": ...}])."""
    if isinstance(value, str):
        return [Answer(value)]
    if isinstance(value, dict):
        body = value.get("body") if isinstance(value.get("body"), dict) else value
        if isinstance(body.get("choices"), list):
            return [Answer(m.get("content") or "", m.get("reasoning_content") or m.get("reasoning"), c.get("finish_reason"))
                    for c in body["choices"] for m in [c.get("message") or {"content": c.get("text")}]]
        return [gemini_answer(c) for c in body.get("candidates") or []]
    if isinstance(value, list) and value and all(isinstance(v, dict) and ("role" in v or "from" in v) for v in value):
        said = [m.get("content", m.get("value")) for m in value if m.get("role", m.get("from")) in ("assistant", "gpt", "model")]
        return [Answer(said[-1])] if said and isinstance(said[-1], str) else []
    if isinstance(value, list):
        return [a for v in value for a in ([Answer(v["text"], None, v.get("finish_reason"))]
                                           if isinstance(v, dict) and isinstance(v.get("text"), str) else answers_of(v))]
    return []


def gemini_answer(candidate: dict) -> Answer:
    parts = (candidate.get("content") or {}).get("parts") or []
    thought = "".join(p.get("text", "") for p in parts if p.get("thought"))
    return Answer("".join(p.get("text", "") for p in parts if not p.get("thought")), thought or None,
                  str(candidate.get("finishReason") or "").lower() or None)


def usage_of(row: dict, cell) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens of a row: its own columns, else the usage its response reports."""
    def first(names):
        return next((count(row[n]) for n in names if count(row.get(n)) is not None), None)

    body = cell.get("body", cell) if isinstance(cell, dict) else {}
    body = body if isinstance(body, dict) else {}
    usage = row.get("usage") if isinstance(row.get("usage"), dict) else body.get("usage") or {}
    gemini = body.get("usageMetadata") or {}
    prompt = first(IN_TOKENS)
    prompt = prompt if prompt is not None else count(usage.get("prompt_tokens", gemini.get("promptTokenCount")))
    out = first(OUT_TOKENS)
    if out is None and count(gemini.get("candidatesTokenCount")) is not None:
        out = count(gemini["candidatesTokenCount"] + (count(gemini.get("thoughtsTokenCount")) or 0))
    return prompt, out if out is not None else count(usage.get("completion_tokens"))


def count(value) -> int | None:
    """A token count, or None for anything that is not one (negative, fractional, absurd, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return int(value) if 0 <= value < 2**31 and float(value).is_integer() else None
