"""students.generate: the one generate loop (local teacher and evaluation), stopping at the answer."""

import pytest
import torch

from students.generate import ANSWER_DONE, answer_stop, cut
from students.model import load_tokenizer
from tasks.teachers import Request, SamplingParams
from tasks.teachers.local import LocalTeacher


@pytest.mark.parametrize("text, done", [
    ("Step 1. The answer is (B).", True),
    ("The answer is (B)", False),
    ("The answer is 3.", False),  # may go on as 3.5
    ("The answer is 3.5 kg. ", True),
    ("the answer is 12\n", True),
    ("I think the answer is not obvious", False),
    ("Thinking... so the answer is (C).\n\nMore", True),
])
def test_answer_sentence_done(text, done):
    assert bool(ANSWER_DONE.search(text)) is done


def test_cut_ends_at_the_answer_sentence_even_when_padded_with_eos():
    tok = load_tokenizer("embedded")
    ids = tok("Count them. The answer is (B).", add_special_tokens=False)["input_ids"]
    pad = [tok.eos_token_id] * 3  # a row stopped by the criterion is padded (pad == eos here)
    kept, finished = cut(tok, ids + pad, stop_at_answer=True)
    assert kept == ids and finished
    more = tok(" And then more words", add_special_tokens=False)["input_ids"]
    kept, _ = cut(tok, ids + more, stop_at_answer=True)
    assert tok.decode(kept).endswith("The answer is (B).")
    kept, finished = cut(tok, ids + more, stop_at_answer=False)
    assert kept == ids + more and not finished


def test_stopping_criterion_is_per_row():
    tok = load_tokenizer("embedded")
    prompt = tok("Q?", add_special_tokens=False)["input_ids"]
    rows = [prompt + tok(t, add_special_tokens=False)["input_ids"] for t in ("The answer is (A).", "Let me thin")]
    width = max(map(len, rows))
    batch = torch.tensor([r + [tok.eos_token_id] * (width - len(r)) for r in rows])
    assert answer_stop(tok, len(prompt))(batch, None).tolist() == [True, False]


def test_local_teacher_shares_a_prompt_across_its_k_samples(tiny_model):
    """k sample indices of one chat are generated from one prefill; answers keep request order."""
    teacher = LocalTeacher(tiny_model, batch_size=8)
    params = SamplingParams(0.7, 0.95, 6)
    reqs = [Request((("user", q),), params, i) for q in ("What is 2+2?", "Name a colour, please.") for i in range(2)]
    out = teacher.complete(reqs[::-1])  # interleaved order in, the same order out
    tok = load_tokenizer(tiny_model)
    lengths = {q: len(tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                              return_dict=True)["input_ids"])
               for q in ("What is 2+2?", "Name a colour, please.")}
    assert [c.prompt_tokens for c in out] == [lengths[r.messages[0][1]] for r in reqs[::-1]]
    assert all(0 < c.completion_tokens <= 6 for c in out)
    again = teacher.complete(reqs[::-1])  # seeded by the batch: the same batch samples the same
    assert [c.content for c in out] == [c.content for c in again]
    assert out[0].content != out[2].content  # different chats got their own answers


@pytest.mark.parametrize("method", [None, "lora", "prompt_tuning"])
def test_chunked_greedy_generation_equals_one_plain_generate_call(tiny_model, tmp_path, method):
    """Prefill once, chunks, finished rows leaving the batch: the same tokens as transformers' own
    `generate` in one call (the reference), for the base model and both adapter kinds."""
    import polars as pl

    from schemas.config import TrainConfig
    from students.evaluate import load_student
    from students.generate import generate
    from students.train import train_student

    adapter = None
    if method:
        rows = pl.DataFrame([{"prompt": [{"role": "user", "content": f"Say {i}"}],
                              "completion": [{"role": "assistant", "content": f"{i}"}]} for i in range(4)])
        train_student(TrainConfig(model=tiny_model, batch_size=2), method, "raw", rows, tmp_path / "a")
        adapter = str(tmp_path / "a")
    model, tok = load_student(tiny_model, adapter), load_tokenizer(tiny_model)
    chats = [[{"role": "user", "content": q}] for q in ("Hi", "What is 2+2? Think.", "Name three colours")]
    ours = generate(model, tok, chats, 40)
    enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        ref = model.generate(**enc, do_sample=False, max_new_tokens=40, pad_token_id=tok.pad_token_id)
    for g, row in zip(ours, ref[:, enc["input_ids"].shape[1]:].tolist(), strict=True):
        kept, _ = cut(tok, row, stop_at_answer=False)
        assert g.text == tok.decode(kept, skip_special_tokens=True) and g.new_tokens == len(kept)


def test_rows_that_finish_leave_the_batch_without_changing_the_others():
    """The embedded model ends some answers early: those rows leave the batch between chunks, and
    every row still equals transformers' one-call greedy `generate`."""
    from students.generate import generate
    from students.model import load_model

    tok, model = load_tokenizer("embedded"), load_model("embedded")
    chats = [[{"role": "user", "content": q}] for q in ("Say hi.", "Write a long story about a dragon.", "2+2=?")]
    ours = generate(model, tok, chats, 48)
    assert min(g.new_tokens for g in ours) < 32 < max(g.new_tokens for g in ours)  # some left after one chunk
    enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        ref = model.generate(**enc, do_sample=False, max_new_tokens=48, pad_token_id=tok.pad_token_id)
    for g, row in zip(ours, ref[:, enc["input_ids"].shape[1]:].tolist(), strict=True):
        kept, _ = cut(tok, row, stop_at_answer=False)
        assert g.text == tok.decode(kept, skip_special_tokens=True)
