"""One generate loop for every local model: the `local` teacher's sampling and the students'
evaluation both call `generate`.

Chats are batched with left padding. The prompts are prefilled once into a KV cache, which is
repeated for their k samples (`num_return_sequences`). transformers' `generate` then runs in
chunks of `CHUNK` tokens, and rows that have finished leave the batch (and the cache) between
chunks, so a batch costs what its rows generate rather than its longest row times its size.
With `stop_at_answer`, a row finishes once the sentence that commits to its final answer ("The
answer is (B).") is complete, which the prompts ask every answer to end with; never inside an open
`<think>` block or an open quote (the `mistakes` arm quotes a wrong attempt's "The answer is (B)."
before the answer it commits to), never at "the answer is not ...".
"""

import re
from dataclasses import dataclass

CHUNK = 16  # tokens generated between two looks for finished rows
# "(B)." now; "3.5 kg." at the next space; never "the answer is (definitely) not ..."
ANSWER_DONE = re.compile(r"answer is\b(?!\s+(?:(?:definitely|certainly|clearly|surely|probably|obviously)\s+)?not\b)"
                         r"[^\n]*?(?:\)\.|\.\s|\n)", re.I)
QUOTE = re.compile(r"[\"“][^\"“”]*[\"”]")  # a closed quote
OPEN_QUOTE = re.compile(r"“|(?<!\d)\"")  # an opening quote; a " after a digit is an inch mark (5" wide)


def answer_done(text: str) -> bool:
    """Whether `text` holds a complete final answer sentence outside `<think>` and outside quotes."""
    if not ANSWER_DONE.search(text):  # the common case: no answer sentence at all
        return False
    if "<think>" in text and "</think>" not in text.rpartition("<think>")[2]:
        return False  # still thinking
    text = text.rpartition("</think>")[2]
    text = QUOTE.sub(" ", text)
    return bool(ANSWER_DONE.search(OPEN_QUOTE.split(text, maxsplit=1)[0]))  # not inside an open quote


@dataclass
class Generated:
    text: str  # decoded new tokens, special tokens dropped
    prompt_tokens: int
    new_tokens: int  # up to and including eos, or up to the stop
    finished: bool  # eos or a complete answer sentence; False: cut by max_new_tokens


def answer_stop(tok, prompt_len: int):
    """A transformers StoppingCriteria: True for rows whose new text holds a complete answer sentence."""
    import torch
    from transformers import StoppingCriteria

    class AnswerStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):  # input_ids: (B, T)
            texts = tok.batch_decode(input_ids[:, prompt_len:], skip_special_tokens=True)
            return torch.tensor([answer_done(t) for t in texts], device=input_ids.device)

    return AnswerStop()


def cut(tok, ids: list[int], stop_at_answer: bool) -> tuple[list[int], bool]:
    """The row's tokens up to eos (included) or the end of its final answer sentence; finished?
    (A row stopped at its answer is padded after it, and pad may be eos: the answer is looked for first.)"""
    eos = tok.eos_token_id
    end = ids.index(eos) + 1 if eos in ids else len(ids)
    if stop_at_answer and answer_done(tok.decode(ids[:end], skip_special_tokens=True)):
        return ids[:first_done(tok, ids[:end])], True
    return ids[:end], eos in ids


def first_done(tok, ids: list[int]) -> int:
    """The length of the shortest prefix holding a final answer sentence: from the shortest holding any
    answer sentence (found by bisection: longer prefixes hold it too), one token at a time."""
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if ANSWER_DONE.search(tok.decode(ids[:mid], skip_special_tokens=True)):
            hi = mid
        else:
            lo = mid + 1
    return next(n for n in range(lo, len(ids) + 1) if answer_done(tok.decode(ids[:n], skip_special_tokens=True)))


def generate(model, tok, chats: list[list[dict]], max_new_tokens: int, *, temperature: float = 0.0,
             top_p: float = 1.0, num_return_sequences: int = 1, stop_at_answer: bool = False,
             adapter_names: list[str] | None = None) -> list[Generated]:
    """`num_return_sequences` generations per chat (chat-major order); greedy when temperature is 0.
    `adapter_names`: a peft LoRA model's adapter for each chat (`__base__`: none), one batch of mixed adapters."""
    import torch
    from transformers import DynamicCache

    enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt",
                                  return_dict=True).to(model.device)
    if soft_prompt(model):
        return whole(model, tok, enc, max_new_tokens, temperature, top_p, num_return_sequences, stop_at_answer)
    ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, P), left padded: the last column is real
    prompt_len, n = ids.shape[1], num_return_sequences
    cache = DynamicCache(config=model.config)
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # as generate numbers left-padded rows
    with torch.no_grad():  # all but the last prompt token; generate feeds that one itself
        model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
              past_key_values=cache, use_cache=True, logits_to_keep=1,  # (B, P, vocab) logits would be ~1 GB
              **peft_rows(adapter_names))
    cache.batch_repeat_interleave(n)
    names = None if adapter_names is None else [a for a in adapter_names for _ in range(n)]  # (B * n,)
    ids, mask = ids.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)  # (B * n, P)
    rows = list(range(ids.shape[0]))  # which output each remaining batch row is
    new: dict[int, list[int]] = {}
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
    stops = [answer_stop(tok, prompt_len)] if stop_at_answer else None
    while rows:
        step = min(CHUNK, max_new_tokens - (ids.shape[1] - prompt_len))
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, max_new_tokens=step,
                                 pad_token_id=tok.pad_token_id, stopping_criteria=stops,
                                 return_dict_in_generate=True, **sampling, **peft_rows(names))
        ids, cache = out.sequences, out.past_key_values  # (b, L + step') and its cache
        mask = torch.cat([mask, mask.new_ones(ids.shape[0], ids.shape[1] - mask.shape[1])], dim=1)
        tails = ids[:, prompt_len:].tolist()
        over = ids.shape[1] - prompt_len >= max_new_tokens
        keep = [i for i, t in enumerate(tails) if not over and not finished(tok, t, stop_at_answer)]
        for i, t in enumerate(tails):
            if i not in keep:
                new[rows[i]] = t
        if len(keep) < len(rows):
            index = torch.tensor(keep, dtype=torch.long, device=ids.device)
            cache.batch_select_indices(index)
            ids, mask, rows = ids[index], mask[index], [rows[i] for i in keep]
            names = None if names is None else [names[i] for i in keep]
    return outputs(tok, enc, n, [new[row] for row in range(len(new))], stop_at_answer)


def peft_rows(names: list[str] | None) -> dict:
    """peft's per-row adapter argument, only when there is one (a plain model takes no such argument)."""
    return {} if names is None else {"adapter_names": names}


def outputs(tok, enc, n: int, tails: list[list[int]], stop_at_answer: bool) -> list[Generated]:
    prompt_tokens = enc["attention_mask"].sum(dim=1).repeat_interleave(n).tolist()
    result = []
    for tail, p in zip(tails, prompt_tokens, strict=True):
        kept, done = cut(tok, tail, stop_at_answer)
        result.append(Generated(tok.decode(kept, skip_special_tokens=True), int(p), len(kept), done))
    return result


def soft_prompt(model) -> bool:
    """A peft prompt-learning model prepends virtual tokens in its forward: its cache is not the prompt's."""
    config = getattr(model, "active_peft_config", None)
    return bool(config is not None and config.is_prompt_learning)


def whole(model, tok, enc, max_new_tokens, temperature, top_p, n, stop_at_answer) -> list[Generated]:
    """One plain `generate` call for the batch (soft-prompt students)."""
    import torch

    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
    stops = [answer_stop(tok, enc["input_ids"].shape[1])] if stop_at_answer else None
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                             num_return_sequences=n, stopping_criteria=stops, **sampling)
    return outputs(tok, enc, n, out[:, enc["input_ids"].shape[1]:].tolist(), stop_at_answer)


def finished(tok, tail: list[int], stop_at_answer: bool) -> bool:
    """Whether a row's new tokens end it: eos, or (with stop_at_answer) a complete answer sentence."""
    if tok.eos_token_id in tail:
        return True
    return stop_at_answer and answer_done(tok.decode(tail, skip_special_tokens=True))
