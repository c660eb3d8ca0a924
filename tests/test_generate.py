"""students.generate: the one generate loop (local teacher and evaluation), stopping at the answer."""

import pytest
import torch

from students.generate import ANSWER_DONE, answer_stop, cut
from students.model import load_tokenizer
from students.teachers import LocalTeacher
from tasks.teachers import Request, SamplingParams


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
    from students.generate import generate
    from students.loading import load_student
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


# -- the stop rule on the real generation loop: a tiny Llama whose logits force a script --------------------
from transformers import LlamaForCausalLM  # noqa: E402

from students.generate import answer_done  # noqa: E402


class ScriptedLlama(LlamaForCausalLM):
    """The tiny Llama, with its logits forcing `script` (token ids) after a prompt of `prompt_len` tokens,
    then eos: the real loop runs (prefill, cache, chunks, stopping criteria); only the token choice is forced."""
    script: list[int] = []
    prompt_len = 0

    def forward(self, input_ids=None, **kwargs):
        cache = kwargs.get("past_key_values") or kwargs.get("cache")
        step = (cache.get_seq_length() if cache is not None else 0) + input_ids.shape[1] - self.prompt_len
        out = super().forward(input_ids=input_ids, **kwargs)  # step: tokens generated before this position
        token = self.script[step] if 0 <= step < len(self.script) else self.config.eos_token_id
        forced = torch.full_like(out.logits[:, -1], -1e9)
        forced[:, token] = 0.0
        out.logits[:, -1] = forced
        return out


FISH = dict(problem_id="fish", split="test", question="Which animal is a fish?", choices=["shark", "cat", "eagle"],
            answer="shark", answer_index=0, answer_type="multiple_choice", hint="", lecture="", solution="",
            caption=None, image_sha=None)
TAIL = " Then words that must never be generated."
MISTAKE = ('A tempting but wrong attempt: "Eagles fly high. The answer is (C)."\nThis attempt is wrong: it gives (C), '
           "which does not fit the facts above.\nSharks have gills, so the answer is (A).")
THINKING = "<think>Maybe the answer is (C). Wait, sharks have gills.</think>\nThe answer is (A)."


def evaluate_scripted(tiny_model: str, text: str, **evaluate) -> dict:
    """The evals row of a student that writes `text` (forced), through evaluate_student -> generate."""
    import polars as pl

    from schemas.config import EvaluateConfig, VerifyConfig
    from students.evaluate import Solver, evaluate_student
    from tasks.prompts import user_message

    tok = load_tokenizer(tiny_model)
    model = ScriptedLlama.from_pretrained(tiny_model).eval()
    model.script = tok(text, add_special_tokens=False)["input_ids"]
    chat = [{"role": "user", "content": user_message(FISH, None, "plain")}]
    model.prompt_len = len(tok.apply_chat_template(chat, add_generation_prompt=True, return_dict=True)["input_ids"])
    info = dict(run="r", student="mistakes-lora", arm="mistakes", method="lora", seed=0, eval_fingerprint="f")
    cfg = EvaluateConfig(**{"max_new_tokens": 160, "batch_size": 1} | evaluate)
    df = evaluate_student(Solver(model, tok), pl.DataFrame([FISH]), {}, ["plain"], info, cfg, 0, VerifyConfig())
    return df.row(0, named=True)


@pytest.mark.parametrize("text", [MISTAKE, THINKING], ids=["quoted wrong attempt", "tentative answer in think"])
def test_generation_runs_past_a_quoted_or_thought_answer_to_the_committed_one(tiny_model, text):
    row = evaluate_scripted(tiny_model, text + TAIL)
    assert row["response"] == text  # stopped at the final answer sentence, not inside the quote or <think>
    assert row["extracted"] == "A" and row["correct"] is True and row["finished"] is True
    assert row["found_by"] == "marker"


def test_the_stop_rule_still_ends_a_plain_answer_at_its_sentence(tiny_model):
    row = evaluate_scripted(tiny_model, "Eagles fly. The answer is (C)." + TAIL)
    assert row["response"] == "Eagles fly. The answer is (C)." and row["finished"] is True
    assert row["extracted"] == "C" and row["correct"] is False


def test_a_truncated_answer_is_recorded_and_counted_wrong(tiny_model):
    tok = load_tokenizer(tiny_model)
    text = "Sharks have gills. The answer is (A). Because they breathe water."
    cut_at = len(tok("Sharks have gills. The answer is (A). Because", add_special_tokens=False)["input_ids"])
    row = evaluate_scripted(tiny_model, text, max_new_tokens=cut_at, stop_at_answer=False)
    assert row["generated_tokens"] == cut_at and row["finished"] is False
    assert row["extracted"] == "A" and row["correct"] is False  # its answer reads right, but it was cut off


@pytest.mark.parametrize("text, done", [
    ("The answer is (B). ", True),
    ('He wrote "The answer is (B). ', False),  # inside an open quote
    ('He wrote "The answer is (B)." and ', False),  # a closed quote
    ('He wrote "The answer is (B)." The answer is (A). ', True),
    ("<think>The answer is (B). ", False),  # still thinking
    ("<think>The answer is (B).</think> So", False),
    ("<think>The answer is (B).</think> The answer is (A). ", True),
    ("The answer is not (B). ", False),
    ("The answer is definitely not (B). ", False),
    ('The box is 5" wide. The answer is (A). ', True),  # an inch mark opens no quote
    ("A tempting but wrong attempt: “The answer is (B). ", False),  # the mistakes arm's quote, still open
    ("A tempting but wrong attempt: “The answer is (B).”\nThis attempt is wrong. The answer is (A). ", True),
])
def test_final_answer_done(text, done):
    assert answer_done(text) is done


# -- the hand-written decode loop against transformers' own generate ---------------------------------------
QUESTIONS = ["Hi", "What is 2+2? Think.", "Name three colours", "Which is heavier, 3 kg or 5 kg?",
             "Count the sides of a square.", "Is a shark a fish?", "Spell cat.", "What comes after Monday?",
             "Explain rain in one sentence.", "How many legs has a spider?", "Pick (A) red or (B) blue.",
             "Say the alphabet backwards, please, all of it.", "7*8=?", "Which planet is largest?",
             "A longer question that goes on for a while about boxes of fruit on a shelf: how many apples?",
             "Why?", "Name a fruit that is yellow.", "Is 17 prime?", "Half of 10?", "Write a haiku."]


def test_greedy_answers_equal_plain_generate_token_for_token_on_20_prompts(sharp_model, tiny_model):
    from students.generate import generate

    model, tok = sharp_model, load_tokenizer(tiny_model)
    chats = [[{"role": "user", "content": q}] for q in QUESTIONS]
    ours = generate(model, tok, chats, 40)  # past GROW: the cache grows once
    enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        ref = model.generate(**enc, do_sample=False, max_new_tokens=40, pad_token_id=tok.pad_token_id)
    rows = [cut(tok, row, stop_at_answer=False)[0] for row in ref[:, enc["input_ids"].shape[1]:].tolist()]
    assert [g.new_tokens for g in ours] == [len(r) for r in rows]
    assert [g.text for g in ours] == [tok.decode(r, skip_special_tokens=True) for r in rows]


@pytest.mark.parametrize("temperature, top_p, top_k", [(0.7, 0.95, 50), (1.0, 0.5, 0), (1.3, 1.0, 5)])
def test_sampling_weights_are_the_distribution_of_transformers_warpers_over_the_whole_vocabulary(temperature, top_p,
                                                                                                  top_k):
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from students.generate import sampling_weights

    logits = torch.randn(4, 1000, generator=torch.Generator().manual_seed(0)) * 3
    ref = logits
    for warp in [TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k) if top_k else None,
                 TopPLogitsWarper(top_p) if top_p < 1 else None]:
        ref = warp(None, ref) if warp else ref
    index, probs = sampling_weights(logits, temperature, top_p, top_k)
    ours = torch.zeros_like(logits).scatter(1, index, probs)
    assert torch.allclose(ours, ref.softmax(dim=-1), atol=1e-6)


def test_rows_end_at_every_eos_the_generation_config_names_as_generate_does(sharp_model, tiny_model):
    """Qwen / Llama-3 instruct models list two eos ids in their generation config: generate() stops at
    either, and so must the fast loop (and `cut` must end the text there)."""
    from students.generate import eos_ids, generate

    model, tok = sharp_model, load_tokenizer(tiny_model)
    chats = [[{"role": "user", "content": q}] for q in QUESTIONS]
    enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        plain = model.generate(**enc, do_sample=False, max_new_tokens=40, pad_token_id=tok.pad_token_id)
    tails = plain[:, enc["input_ids"].shape[1]:].tolist()
    other = max(set(t for row in tails for t in row[3:10]), key=lambda t: sum(t in row for row in tails))
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, other]
    try:
        eos = eos_ids(model, tok)
        ours = generate(model, tok, chats, 40)
        with torch.no_grad():
            ref = model.generate(**enc, do_sample=False, max_new_tokens=40, pad_token_id=tok.pad_token_id)
    finally:
        model.generation_config.eos_token_id = saved
    rows = [cut(tok, row, stop_at_answer=False, eos=eos)[0] for row in ref[:, enc["input_ids"].shape[1]:].tolist()]
    assert sum(len(r) < 40 and r[-1] == other for r in rows) >= 5  # the second eos really ends rows
    assert [g.new_tokens for g in ours] == [len(r) for r in rows]
    assert [g.text for g in ours] == [tok.decode(r, skip_special_tokens=True) for r in rows]


def metaspace_tokenizer():
    """A real SentencePiece-style (Metaspace) tokenizer: a lone piece decodes without its leading space."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "</s>", "▁We", "▁think", "▁the", "▁answer", "▁is", "▁(B).", "▁Next", "▁line"]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="</s>")


def test_the_stop_rule_reads_sentencepiece_pieces_in_context():
    from students.generate import Watch

    tok = metaspace_tokenizer()
    assert tok.decode(tok.convert_tokens_to_ids(["▁is"])) == "is"  # alone, the space is gone
    ids = tok("We think the answer is (B). Next line", add_special_tokens=False)["input_ids"]
    watch, tails = Watch(tok, stop_at_answer=True), [[]]
    for t in ids:
        if not watch.step([0], tails, [t]):
            break
    assert tok.decode(tails[0]) == "We think the answer is (B)."  # piece by piece, "Theansweris(B)." never stops
