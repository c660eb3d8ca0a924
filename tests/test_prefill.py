"""students.prefill: prompts that begin alike prefilled by groups, against the whole prefill and transformers."""

from dataclasses import dataclass

import pytest
import torch

from schemas.config import SyntheticIngest
from students.generate import cut
from students.model import load_tokenizer
from tasks.prompts import user_message
from tasks.sources.synthetic import SyntheticSource


def evaluation_chats(n: int) -> list[list[dict]]:
    """n distinct synthetic problems each asked as an evaluation asks it: for a chain of thought and for the
    answer alone (the generator repeats a question now and then: those would share a prompt whole)."""
    records = SyntheticSource(SyntheticIngest(n_problems=4 * n)).records()
    problems = list({r.question + str(r.choices): vars(r) for r in records}.values())[:n]
    assert len(problems) == n
    return [[{"role": "user", "content": user_message(p, None, "plain", style)}] for p in problems for style in ("cot", "direct")]


def encoded(tok, chats):
    return tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True)


def unpadded(enc) -> list[list[int]]:
    return [row[m.bool()].tolist() for row, m in zip(enc["input_ids"], enc["attention_mask"], strict=True)]


def lcp(seqs: list[list[int]]) -> int:
    """Brute force: the longest start every sequence shares."""
    return next(n for n in range(min(map(len, seqs)) + 1)
                if n == min(map(len, seqs)) or len({tuple(s[:n + 1]) for s in seqs}) > 1)


def test_each_problems_two_prompts_share_one_prefill_of_exactly_their_common_start(tiny_model):
    from students.prefill import SHARE_MIN, groups

    seqs = unpadded(encoded(load_tokenizer(tiny_model), evaluation_chats(10)))
    plan = groups(seqs, None)
    assert plan is not None
    assert sorted(i for _, m in plan for i in m) == list(range(20))  # every row once
    group_of = {i: g for g, (_, m) in enumerate(plan) for i in m}
    assert all(group_of[2 * i] == group_of[2 * i + 1] for i in range(10))  # a problem's cot and direct prompts
    for prefix, members in plan:
        assert prefix == min(lcp([seqs[i] for i in members]), *(len(seqs[i]) - 1 for i in members))
        assert prefix >= SHARE_MIN
    assert groups(seqs[::2], None) is None  # one prompt a problem: prefilled whole


def test_rows_of_different_adapters_never_share_a_prefix(tiny_model, monkeypatch):
    import students.prefill as prefill

    monkeypatch.setattr(prefill, "WORTH", 1.0)  # group whatever shares, to see which rows may
    seqs = unpadded(encoded(load_tokenizer(tiny_model), evaluation_chats(10)))
    names = ["a", "a"] * 5 + ["a", "b"] * 5  # problems 0-4: both prompts on one adapter; 5-9: split
    plan = prefill.groups(seqs, names)
    assert all(len({names[i] for i in m}) == 1 for _, m in plan)
    group_of = {i: g for g, (_, m) in enumerate(plan) for i in m}
    assert all(group_of[2 * i] == group_of[2 * i + 1] for i in range(5))


def test_grouped_prefill_gives_the_whole_prefills_next_token_logits(sharp_model, tiny_model):
    from students.prefill import by_groups, groups, whole

    tok = load_tokenizer(tiny_model)
    enc = encoded(tok, evaluation_chats(10))
    seqs = unpadded(enc)
    with torch.inference_mode():
        ours = by_groups(sharp_model, seqs, groups(seqs, None), 8, None)
        ref = whole(sharp_model, enc, 8, None)
    torch.testing.assert_close(ours.logits, ref.logits, atol=1e-4, rtol=1e-4)
    assert ours.position.tolist() == ref.position.tolist()  # each row's last position: its real tokens less one


@pytest.mark.parametrize("stop_at_answer, n", [(False, 1), (True, 1), (False, 2)])
def test_greedy_answers_of_grouped_prompts_equal_plain_generate_token_for_token_on_20_prompts(sharp_model, tiny_model,
                                                                                              stop_at_answer, n):
    """20 prompts (10 problems, cot and direct) through the grouped prefill, past a cache growth: transformers'
    own `generate` (whole prompts, one call) is the reference; with n = 2 the grouped cache is then repeated
    for each prompt's two (greedy, so equal) answers."""
    from students.generate import generate
    from students.prefill import groups

    tok, chats = load_tokenizer(tiny_model), evaluation_chats(10)
    enc = encoded(tok, chats)
    assert groups(unpadded(enc), None) is not None  # the grouped path is the one under test
    ours = generate(sharp_model, tok, chats, 40, stop_at_answer=stop_at_answer, num_return_sequences=n)
    assert all(ours[i * n + j] == ours[i * n] for i in range(len(chats)) for j in range(n))
    ours = ours[::n]
    with torch.no_grad():
        ref = sharp_model.generate(**enc, do_sample=False, max_new_tokens=40, pad_token_id=tok.pad_token_id)
    rows = [cut(tok, row, stop_at_answer)[0] for row in ref[:, enc["input_ids"].shape[1]:].tolist()]
    assert [g.text for g in ours] == [tok.decode(r, skip_special_tokens=True) for r in rows]
    assert [g.new_tokens for g in ours] == [len(r) for r in rows]


@dataclass
class Echo:
    """A solver that answers each prompt with the prompt and the picture it was handed: what the model would be
    asked, so the test sees which prompt and picture each evals row got (the model itself is not under test)."""
    images: list

    def __call__(self, prompts, rows, max_new_tokens, num_return_sequences=1, **sampling):
        from students.generate import Generated

        return [Generated(f"{p} | picture {self.images[i]} | sample {s}", 1, 1, True)
                for p, i in zip(prompts, rows, strict=True) for s in range(num_return_sequences)]


@pytest.mark.parametrize("k", [1, 3])
def test_evaluation_asks_a_problems_prompts_side_by_side_and_files_each_answer_under_its_own_job(k):
    """answered() lays each problem's (variant, style) prompts next to each other for the shared prefill; every
    evals row must still hold the answer to its own problem, variant and style, its own picture, and its k samples."""
    from schemas.config import EvaluateConfig, VerifyConfig
    from students.evaluate import answered

    records = list({r.question: vars(r) for r in SyntheticSource(SyntheticIngest(n_problems=40)).records()}.values())[:5]
    rows = [r | dict(problem_id=f"p{i}", lecture=f"lecture of p{i}") for i, r in enumerate(records)]
    jobs = [("plain", "cot"), ("plain", "direct"), ("lecture", "cot")]
    cfg = EvaluateConfig(k=k, batch_size=4)  # batches that split problems
    frames = answered(Echo([f"img{i}" for i in range(len(rows))]), rows, {}, jobs, dict(run="r", student="s"), cfg,
                      VerifyConfig(), None, "sampled" if k > 1 else "greedy")
    for (variant, style), frame in zip(jobs, frames, strict=True):
        assert frame["problem_id"].to_list() == [f"p{i}" for i in range(len(rows)) for _ in range(k)]
        for i, (response, sample) in enumerate(zip(frame["response"], frame["sample_index"], strict=True)):
            p = rows[i // k]
            assert response.startswith(user_message(p, None, variant, style))
            assert f"picture img{i // k} |" in response and response.endswith(f"sample {sample}")
