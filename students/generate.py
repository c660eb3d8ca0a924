"""One generate loop for every local model: the `local` teacher's sampling and the students'
evaluation both call `generate`.

Chats are batched with left padding; k samples of one prompt share its prefill
(`num_return_sequences`); with `stop_at_answer`, a sequence ends once the sentence that
commits to its final answer ("The answer is (B).") is complete, which the prompts ask every
answer to end with. Each row stops on its own; the batch ends when every row has.
"""

import re
from dataclasses import dataclass

ANSWER_DONE = re.compile(r"answer is\b[^\n]*?(?:\)\.|\.\s|\n)", re.I)  # "(B)." now; "3.5 kg." at the next space


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
            return torch.tensor([bool(ANSWER_DONE.search(t)) for t in texts], device=input_ids.device)

    return AnswerStop()


def cut(tok, ids: list[int], stop_at_answer: bool) -> tuple[list[int], bool]:
    """The row's tokens up to eos (included) or the end of its answer sentence; finished?
    (A row stopped at its answer is padded after it, and pad may be eos: the answer is looked for first.)"""
    eos = tok.eos_token_id
    end = ids.index(eos) + 1 if eos in ids else len(ids)
    if stop_at_answer and ANSWER_DONE.search(tok.decode(ids[:end], skip_special_tokens=True)):
        lo, hi = 1, end  # the shortest prefix holding the answer sentence (longer prefixes hold it too)
        while lo < hi:
            mid = (lo + hi) // 2
            if ANSWER_DONE.search(tok.decode(ids[:mid], skip_special_tokens=True)):
                hi = mid
            else:
                lo = mid + 1
        return ids[:lo], True
    return ids[:end], eos in ids


def generate(model, tok, chats: list[list[dict]], max_new_tokens: int, *, temperature: float = 0.0,
             top_p: float = 1.0, num_return_sequences: int = 1, stop_at_answer: bool = False) -> list[Generated]:
    """`num_return_sequences` generations per chat (chat-major order) in one batch; greedy when
    temperature is 0."""
    import torch

    enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt",
                                  return_dict=True).to(model.device)
    prompt_len = enc["input_ids"].shape[1]
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
    stops = [answer_stop(tok, prompt_len)] if stop_at_answer else None
    with torch.no_grad():
        out = model.generate(**enc, **sampling, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                             num_return_sequences=num_return_sequences, stopping_criteria=stops)
    prompt_tokens = enc["attention_mask"].sum(dim=1).repeat_interleave(num_return_sequences).tolist()
    result = []
    for row, p in zip(out[:, prompt_len:].tolist(), prompt_tokens, strict=True):  # (B * n, T_new)
        ids, finished = cut(tok, row, stop_at_answer)
        result.append(Generated(tok.decode(ids, skip_special_tokens=True), int(p), len(ids), finished))
    return result
