"""The loop `students.generate.generate` replaced (kept as the bench's "before"): transformers'
`generate` called in chunks of 16 tokens over a DynamicCache, the stop rule decoding every row's
whole text at every token, finished rows leaving the batch between chunks."""

import torch
from transformers import DynamicCache

from students.generate import answer_done, answer_stop, outputs

CHUNK = 16


def finished(tok, tail: list[int], stop_at_answer: bool) -> bool:
    if tok.eos_token_id in tail:
        return True
    return stop_at_answer and answer_done(tok.decode(tail, skip_special_tokens=True))


def chunked_generate(model, tok, chats, max_new_tokens, *, temperature=0.0, top_p=1.0, num_return_sequences=1,
                     stop_at_answer=False):
    enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt",
                                  return_dict=True).to(model.device)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    prompt_len, n = ids.shape[1], num_return_sequences
    cache = DynamicCache(config=model.config)
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
              past_key_values=cache, use_cache=True, logits_to_keep=1)
    cache.batch_repeat_interleave(n)
    ids, mask = ids.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)
    rows = list(range(ids.shape[0]))
    new: dict[int, list[int]] = {}
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
    stops = [answer_stop(tok, prompt_len)] if stop_at_answer else None
    while rows:
        step = min(CHUNK, max_new_tokens - (ids.shape[1] - prompt_len))
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, max_new_tokens=step,
                                 pad_token_id=tok.pad_token_id, stopping_criteria=stops,
                                 return_dict_in_generate=True, **sampling)
        ids, cache = out.sequences, out.past_key_values
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
    return outputs(tok, enc, n, [new[row] for row in range(len(new))], stop_at_answer)
