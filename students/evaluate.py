"""evaluate: greedy answers of a student (adapter or untuned base) on a split, graded like samples."""

import polars as pl

from schemas.tables import SCHEMAS
from students.generate import Generated, generate
from tasks.grade import grade
from tasks.progress import Progress
from tasks.prompts import user_message


def load_student(base: str, adapter_dir: str | None):
    from students.model import load_model

    model = load_model(base)
    if adapter_dir is None:
        return model
    from peft import PeftModel

    student = PeftModel.from_pretrained(model, adapter_dir)
    if student.peft_config["default"].peft_type == "LORA":
        return student.merge_and_unload().eval()  # same outputs, plain-model speed
    return student.eval()


def answer(model, tok, prompts: list[str], max_new_tokens: int, batch_size: int, stop_at_answer: bool = True,
           desc: str = "evaluating") -> list[Generated]:
    """Greedy answers, one per prompt, `batch_size` prompts at a time."""
    out: list[Generated] = []
    with Progress(desc, total=len(prompts), unit="answers") as progress:
        for start in range(0, len(prompts), batch_size):
            chats = [[{"role": "user", "content": p}] for p in prompts[start:start + batch_size]]
            out += generate(model, tok, chats, max_new_tokens, stop_at_answer=stop_at_answer)
            progress.update(len(chats))
    return out


def evaluate_student(model, tok, problems: pl.DataFrame, captions: dict[str, str], variant: str,
                     info: dict, max_new_tokens: int, batch_size: int, stop_at_answer: bool = True) -> pl.DataFrame:
    """One evals row per problem; `info` carries run, student, arm, method, eval_fingerprint."""
    rows = problems.to_dicts()
    prompts = [user_message(p, captions.get(p["problem_id"]), variant) for p in rows]
    answers = answer(model, tok, prompts, max_new_tokens, batch_size, stop_at_answer, f"evaluate {info['student']}")
    out = []
    for p, a in zip(rows, answers, strict=True):
        v = grade(a.text, p)
        out.append(info | dict(problem_id=p["problem_id"], split=p["split"], response=a.text,
                               extracted=v.extracted, correct=v.correct, grader=v.grader,
                               generated_tokens=a.new_tokens))
    return pl.DataFrame(out, schema=SCHEMAS["evals"])
