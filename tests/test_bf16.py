"""sample.dtype bfloat16: the local teacher computing in bfloat16 answers as the same model (to bfloat16
rounding), under an identity of its own, through the same fast loop."""

import copy

import polars as pl
import pytest
import torch
from pydantic import ValidationError

from schemas.config import SampleConfig, SyntheticIngest
from schemas.paths import DataDir
from students.backends import identity, teacher_for
from students.generate import generate
from students.model import load_model, load_tokenizer
from tasks.ingest import ingest
from tasks.sample import build_requests, sample_shard
from teacher_cache import CachedTeacher, CacheStore


def test_bf16_answers_are_cached_apart_from_float32():
    for dtype, want in (("float32", "local/embedded"), ("bfloat16", "local/embedded+bf16")):
        cfg = SampleConfig(dtype=dtype)
        assert teacher_for(cfg).identity == identity(cfg) == want


@pytest.mark.parametrize("bad", [dict(teacher="openai", model="gpt-4o"), dict(engine="llama_cpp")])
def test_dtype_is_refused_where_nothing_would_honour_it(bad):
    with pytest.raises(ValidationError, match="sample.dtype bfloat16"):
        SampleConfig(dtype="bfloat16", **bad)


def synthetic(tmp_path, n: int) -> pl.DataFrame:
    data = DataDir(tmp_path / "data")
    ingest(SyntheticIngest(n_problems=n), data)
    return pl.read_parquet(data.table("problems") / "**" / "*.parquet")


def test_bf16_teacher_samples_in_bf16_and_is_asked_anew(tmp_path, tiny_model):
    """On one cache: float32 answers are not served to the bf16 teacher (it is asked, and computes in
    bfloat16), and its own answers are served to it on a re-run."""
    probs = synthetic(tmp_path, 10)
    captions = dict(zip(probs["problem_id"], probs["caption"], strict=True))
    db = CacheStore(tmp_path / "cache.sqlite")
    runs = {}
    for dtype in ("float32", "bfloat16", "bfloat16"):
        cfg = SampleConfig(model=tiny_model, k=2, max_new_tokens=8, batch_size=8, dtype=dtype)
        teacher = teacher_for(cfg)
        result = sample_shard(cfg, probs, captions, CachedTeacher(teacher, db))
        runs.setdefault(dtype, []).append((result, teacher))
    (f32, _), = runs["float32"]
    (first, teacher), (again, fresh) = runs["bfloat16"]
    assert first.stats.hits == 0 and first.stats.new == f32.stats.new > 0
    assert next(teacher._model.parameters()).dtype == torch.bfloat16
    assert set(first.samples["teacher"]) == {f"local/{tiny_model}+bf16"}
    assert again.stats.new == 0 and fresh._model is None  # served from the cache, the model never loaded
    assert again.samples.sort("sample_id").equals(first.samples.sort("sample_id"))


def test_bf16_is_the_same_model_to_rounding(tmp_path):
    """The embedded model in bfloat16, teacher-forced along float32's greedy answers to 20 of the default
    run's prompts: the same next token at almost every position and a next-token distribution within a
    small KL of float32's (measured: 98.6% and 0.0008 nats). Its own greedy answers come out of the fast loop
    whole. (Greedy paths themselves are no test in bfloat16: transformers' own bfloat16 `generate` gives
    another answer to a prompt asked alone than in a batch of 20 for most prompts; bench/sampling_local.py.)"""
    probs = synthetic(tmp_path, 30)
    captions = dict(zip(probs["problem_id"], probs["caption"], strict=True))
    prompts = dict.fromkeys(r.messages for _, _, r in build_requests(SampleConfig(), probs, captions)[0])
    chats = [[{"role": role, "content": c} for role, c in m] for m in list(prompts)[:20]]
    tok, model = load_tokenizer("embedded"), load_model("embedded")
    half = copy.deepcopy(model).to(torch.bfloat16)
    enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**enc, do_sample=False, max_new_tokens=48, pad_token_id=tok.pad_token_id)
        width = enc["input_ids"].shape[1]
        mask = torch.cat([enc["attention_mask"], (out[:, width:] != tok.pad_token_id).long()], dim=1)
        keep = mask[:, width:].bool()  # generated positions (not the padding after an eos)
        a = model(input_ids=out, attention_mask=mask).logits[:, width - 1:-1][keep].log_softmax(-1)
        b = half(input_ids=out, attention_mask=mask).logits[:, width - 1:-1][keep].float().log_softmax(-1)
    agree = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    kl = (a.exp() * (a - b)).sum(-1).mean().item()
    assert keep.sum() > 500 and agree >= 0.95 and kl < 0.01, (agree, kl)
    answers = generate(half, tok, chats, 48, stop_at_answer=True)
    assert all(0 < g.new_tokens <= 48 and g.text for g in answers)
