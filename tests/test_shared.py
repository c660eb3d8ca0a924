"""Students over one shared base: mixed-adapter batches answer, token for token, as each student
answering alone through its own merged model (students/evaluate.py's path)."""

import copy

import polars as pl
import pytest
import torch

from schemas.config import EvaluateConfig, VerifyConfig
from students.evaluate import Solver, evaluate_student
from students.loading import load_student
from students.model import load_model, load_tokenizer
from students.shared import BASE_ROWS, Member, evaluate_shared, load_shared

PROBLEMS = pl.DataFrame([dict(problem_id=f"p{i}", split="test", question=f"What is {i} times {i + 3}? Think.",
                              choices=[], answer=str(i * (i + 3)), answer_index=None, answer_type="numeric", hint="",
                              lecture="", solution="", caption=None, image_sha=None) for i in range(5)])
MAX_NEW = 40  # past two of generate's chunks: rows that end leave the batch (and its adapter names) twice


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """This module's own tiny Llama, seeded: which rows end early depends on its weights, and the
    session's tiny model is drawn from whatever random state the tests before it left (in the whole
    suite its rows never ended early, alone they did)."""
    from conftest import make_tiny_llama

    torch.manual_seed(0)
    return str(make_tiny_llama(tmp_path_factory.mktemp("seeded-llama")))


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory) -> dict[str, str]:
    """Two real LoRA adapters with random (not zero) updates, so each student answers differently."""
    from peft import LoraConfig, get_peft_model

    out = {}
    for name, seed in (("s0", 1), ("s1", 2)):
        torch.manual_seed(seed)
        config = LoraConfig(r=4, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
        path = tmp_path_factory.mktemp(name)
        get_peft_model(load_model(tiny_model), config).save_pretrained(path)
        out[name] = str(path)
    return out


def ending_tokenizer(tiny_model, adapter: str):
    """The tokenizer with its eos moved to a token the student emits early in its first answer, so some
    rows end before MAX_NEW and leave the batch while others go on (a random model rarely ends)."""
    tok = copy.deepcopy(load_tokenizer(tiny_model))
    model = load_student(tiny_model, adapter)
    enc = tok.apply_chat_template([[{"role": "user", "content": PROBLEMS["question"][0]}]], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    tok.eos_token = tok.convert_ids_to_tokens(int(out[0, enc["input_ids"].shape[1] + 5]))
    return tok


def info(student: str) -> dict:
    return dict(run="r", student=student, arm="raw", method="lora", seed=0, eval_fingerprint="f")


def test_mixed_adapter_batches_answer_as_each_student_alone(tiny_model, adapters):
    tok = ending_tokenizer(tiny_model, adapters["s0"])
    cfg = EvaluateConfig(max_new_tokens=MAX_NEW, batch_size=4, prompts=["cot", "direct"])  # batches span students
    alone = [evaluate_student(Solver(load_student(tiny_model, path), tok), PROBLEMS, {}, ["plain"], info(name), cfg, 0,
                              VerifyConfig()) for name, path in [("base", None), *adapters.items()]]
    members = [Member(name, ["plain"], info("base" if name == BASE_ROWS else name)) for name in [BASE_ROWS, *adapters]]
    shared = evaluate_shared(Solver(load_shared(tiny_model, adapters), tok), PROBLEMS, {}, members, cfg, VerifyConfig())
    for mixed, own in zip(shared, alone, strict=True):
        assert mixed.drop("latency_s").equals(own.drop("latency_s"))  # same texts, token counts, grades, order
    texts = [df["response"].to_list() for df in alone]
    assert texts[0] != texts[1] != texts[2] != texts[0]  # a student answered with another's adapter would show
    lengths = pl.concat(alone)["generated_tokens"]
    assert (lengths < MAX_NEW).any() and (lengths == MAX_NEW).any()  # rows left the mixed batches mid-way


def test_pass_at_k_samples_of_a_shared_student_are_seeded_as_alone(tiny_model, adapters):
    tok = load_tokenizer(tiny_model)
    cfg = EvaluateConfig(max_new_tokens=8, batch_size=4, k=3)
    alone = evaluate_student(Solver(load_student(tiny_model, adapters["s1"]), tok), PROBLEMS, {}, ["plain"],
                             info("s1"), cfg, 7, VerifyConfig())
    members = [Member("s0", ["plain"], info("s0"), 3), Member("s1", ["plain"], info("s1"), 7)]
    shared = evaluate_shared(Solver(load_shared(tiny_model, adapters), tok), PROBLEMS, {}, members, cfg, VerifyConfig())
    assert set(shared[1]["decoding"]) == {"greedy", "sampled"}
    assert shared[1].drop("latency_s").equals(alone.drop("latency_s"))
