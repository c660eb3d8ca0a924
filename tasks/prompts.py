"""How a problem is put to a teacher or a student, and how a final answer is written.

Teacher and student see the same user message, so a student is trained on the exact
question form the teacher answered; with `sample.think_prompt` the teacher's message adds one
sentence asking for `<think>` reasoning before a short solution (the student is not asked that). The `lecture` variant adds the lecture as context
(the research plan's stand-in for a retrieval tool).
"""

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def options_text(choices: list[str]) -> str:
    return " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))


def user_message(problem: dict, caption: str | None, variant: str, style: str = "cot") -> str:
    """The problem as one user turn; `caption` describes the image for text-only models.
    `style`: `cot` asks for step-by-step reasoning before the answer, `direct` for the answer alone."""
    parts = []
    if variant == "lecture" and problem.get("lecture"):
        parts.append(f"Lecture: {problem['lecture']}")
    if caption:
        parts.append(f"Image: {caption}")
    if problem.get("hint"):
        parts.append(f"Context: {problem['hint']}")
    parts.append(f"Question: {problem['question']}")
    lead = "Think step by step, then finish with" if style == "cot" else "Answer at once, only with"
    if problem.get("choices"):
        parts.append(f"Options: {options_text(problem['choices'])}")
        parts.append(f"{lead} \"The answer is (X).\" where X is the option letter.")
    else:
        parts.append(f"{lead} \"The answer is N.\" where N is the final answer.")
    return "\n".join(parts)


THINK_FIRST = ("First reason step by step inside <think> </think> tags. After </think>, write the solution for a "
               "reader in a few sentences, and finish with the answer sentence.")


def teacher_message(problem: dict, caption: str | None, variant: str, think: bool) -> str:
    """The user turn a teacher sees: the student's, plus (with `think`) the request for a separate
    chain of thought, so that a plain chat teacher's reasoning can be told apart from its solution."""
    message = user_message(problem, caption, variant)
    return f"{message}\n{THINK_FIRST}" if think else message


def answer_sentence(problem: dict) -> str:
    """The gold final answer in the form the prompt asks for."""
    if problem.get("choices") and problem.get("answer_index") is not None:
        return f"The answer is ({LETTERS[problem['answer_index']]})."
    return f"The answer is {problem['answer']}."
