"""evaluate: greedy answers of a student (adapter or untuned base) on a split, graded like samples."""

import polars as pl

from schemas.tables import SCHEMAS
from tasks.grade import grade
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


def generate(model, tok, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[tuple[str, int]]:
    """Greedy (text, generated tokens) per prompt, batched with left padding."""
    import torch
    from tqdm.auto import tqdm

    out = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="evaluating", unit="batch"):
        chats = [[{"role": "user", "content": p}] for p in prompts[start:start + batch_size]]
        enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True,
                                      return_tensors="pt", return_dict=True).to(model.device)
        with torch.no_grad():
            gen = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
        for row in gen[:, enc["input_ids"].shape[1]:].tolist():  # (B, T_new)
            n = row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
            out.append((tok.decode(row[:n], skip_special_tokens=True), n))
    return out


def evaluate_student(model, tok, problems: pl.DataFrame, captions: dict[str, str], variant: str,
                     info: dict, max_new_tokens: int, batch_size: int) -> pl.DataFrame:
    """One evals row per problem; `info` carries run, student, arm, method, student_fingerprint."""
    rows = problems.to_dicts()
    prompts = [user_message(p, captions.get(p["problem_id"]), variant) for p in rows]
    answers = generate(model, tok, prompts, max_new_tokens, batch_size)
    out = []
    for p, (text, n) in zip(rows, answers, strict=True):
        v = grade(text, p)
        out.append(info | dict(problem_id=p["problem_id"], split=p["split"], response=text,
                               extracted=v.extracted, correct=v.correct, grader=v.grader, generated_tokens=n))
    return pl.DataFrame(out, schema=SCHEMAS["evals"])
