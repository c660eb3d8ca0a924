"""The prefill of one generate batch: its prompts' keys and values written into a preallocated KV cache
(`StaticCache`), and each prompt's next-token logits.

Prompts that begin alike share that beginning's prefill. An evaluation asks every problem twice, for a
chain of thought and for the answer alone, and the two user turns differ only in their last sentence:
prefilled whole, each problem's question (with its options, context and lecture) is computed twice.
Here rows whose token ids share a long enough start (and their adapter, in a mixed-adapter batch) form a
group; the group's common start is prefilled once, its cache rows are copied to every member, and then
each row's own rest is prefilled after it in one more forward. Positions count real tokens only, as
they do in a left-padded batch, so a row's logits are those of its whole prompt (to rounding; greedy
answers equal transformers' `generate` in tests/test_prefill.py). A batch whose rows share little is
prefilled whole (the `local` teacher's prompts: its k samples of a prompt already share one prefill).
"""

import functools
import inspect
from dataclasses import dataclass

GROW = 32  # cache columns added at a time: memory follows the rows still going, at a copy every 32 tokens
SHARE_MIN = 16  # tokens two rows must share from their start to be prefilled as one group
WORTH = 0.75  # prefill by groups only when that computes at most this share of the whole prefill's tokens


@dataclass
class Prefilled:
    logits: object  # (B, vocab): each row's next-token logits
    cache: object  # the StaticCache, batch rows in the prompts' order
    mask: object  # (B, P): attention mask over the cache's first P columns (1: a real token)
    position: object  # (B, 1): each row's last position


def prefill(model, enc, max_new_tokens: int, adapter_names: list[str] | None = None) -> Prefilled:
    """The batch's prompts (left padded, as `apply_chat_template` pads them) prefilled: by groups of rows
    that share their start where that saves enough (`WORTH`), else whole."""
    seqs = [row[m.bool()].tolist() for row, m in zip(enc["input_ids"], enc["attention_mask"], strict=True)]
    plan = groups(seqs, adapter_names)
    if plan is None:
        return whole(model, enc, max_new_tokens, adapter_names)
    return by_groups(model, seqs, plan, max_new_tokens, adapter_names)


def common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):  # up to the shorter
        if x != y:
            break
        n += 1
    return n


def groups(seqs: list[list[int]], names: list[str] | None) -> list[tuple[int, list[int]]] | None:
    """(shared prefix length, member rows) per group, or None when grouping would not save `WORTH`.
    Rows sorted by (adapter, ids) put prompts with a common start next to each other; a row joins the
    group before it when it shares with the group's first row at least `SHARE_MIN` tokens, half the
    group's prefix and half its own tokens (so one common system turn neither shrinks a pair's long
    prefix to the system turn nor chains every row into one group).
    Every member keeps at least its last token to prefill after the prefix (its logits come from it)."""
    order = sorted(range(len(seqs)), key=lambda i: ("" if names is None else names[i], seqs[i]))
    plan: list[list] = []
    for i in order:
        if plan:
            prefix, members = plan[-1]
            first = members[0]
            shared = 0 if names is not None and names[first] != names[i] else common(seqs[first], seqs[i])
            if shared >= max(SHARE_MIN, prefix // 2, len(seqs[i]) // 2):
                plan[-1][0] = min(prefix, shared, len(seqs[i]) - 1)
                members.append(i)
                continue
        plan.append([len(seqs[i]) - 1, [i]])
    if any(prefix < 1 for prefix, _ in plan):
        return None
    longest_prefix = max(prefix for prefix, _ in plan)
    longest_rest = max(len(seqs[i]) - prefix for prefix, members in plan for i in members)
    grouped = len(plan) * longest_prefix + len(seqs) * longest_rest
    if grouped > WORTH * len(seqs) * max(map(len, seqs)):
        return None
    return [tuple(group) for group in plan]


def whole(model, enc, max_new_tokens: int, adapter_names: list[str] | None) -> Prefilled:
    """One forward over the whole left-padded batch."""
    from transformers import StaticCache

    ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, P), left padded: the last column is real
    cache = StaticCache(config=model.config, max_cache_len=ids.shape[1] + min(GROW, max_new_tokens))
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # as generate numbers left-padded rows
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, **cache_arg(model, cache),
                   use_cache=True, logits_to_keep=1, **peft_rows(adapter_names)).logits[:, -1]
    return Prefilled(logits, cache, mask, positions[:, -1:])


def by_groups(model, seqs: list[list[int]], plan: list[tuple[int, list[int]]], max_new_tokens: int,
              adapter_names: list[str] | None) -> Prefilled:
    """Each group's prefix, left padded to the longest (one forward, one cache row a group); the cache rows
    copied to the members; each member's rest, left padded to the longest rest, in a second forward. A
    row's mask: its group's prefix, a gap of padding, its rest; its positions count its real tokens. The
    padding's ids are 0: masked, they are never attended to."""
    import torch
    from transformers import StaticCache

    device = model.device
    width = max(prefix for prefix, _ in plan)
    rest = max(len(seqs[i]) - prefix for prefix, members in plan for i in members)
    head_ids = torch.zeros((len(plan), width), dtype=torch.long)
    head_mask = torch.zeros((len(plan), width), dtype=torch.long)
    tail_ids = torch.zeros((len(seqs), rest), dtype=torch.long)
    tail_mask = torch.zeros((len(seqs), rest), dtype=torch.long)
    group_of = [0] * len(seqs)
    for g, (prefix, members) in enumerate(plan):
        head_ids[g, width - prefix:] = torch.tensor(seqs[members[0]][:prefix])
        head_mask[g, width - prefix:] = 1
        for i in members:
            own = seqs[i][prefix:]
            tail_ids[i, rest - len(own):], tail_mask[i, rest - len(own):] = torch.tensor(own), 1
            group_of[i] = g
    head_ids, head_mask, tail_ids, tail_mask = (t.to(device) for t in (head_ids, head_mask, tail_ids, tail_mask))
    cache = StaticCache(config=model.config, max_cache_len=width + rest + min(GROW, max_new_tokens))
    heads = None if adapter_names is None else [adapter_names[members[0]] for _, members in plan]
    model(input_ids=head_ids, attention_mask=head_mask, position_ids=(head_mask.cumsum(-1) - 1).clamp(min=0),
          **cache_arg(model, cache), use_cache=True, logits_to_keep=1, **peft_rows(heads))
    index = torch.tensor(group_of, device=device)
    cache_rows(cache, lambda t: t[index])
    mask = torch.cat([head_mask[index], tail_mask], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=tail_ids, attention_mask=mask, position_ids=positions[:, width:],
                   **cache_arg(model, cache), use_cache=True, logits_to_keep=1, **peft_rows(adapter_names)).logits[:, -1]
    return Prefilled(logits, cache, mask, positions[:, -1:])


def cache_arg(model, cache) -> dict:
    """The KV cache as the model's forward takes it: `cache` (transformers 5.x, where `past_key_values` is
    deprecated) or `past_key_values` (earlier releases)."""
    return {"cache" if takes_cache(type(getattr(model, "get_base_model", lambda: model)())) else "past_key_values": cache}


@functools.cache
def takes_cache(cls) -> bool:
    return "cache" in inspect.signature(cls.forward).parameters


def peft_rows(names: list[str] | None) -> dict:
    """peft's per-row adapter argument, only when there is one (a plain model takes no such argument)."""
    return {} if names is None else {"adapter_names": names}


def cache_rows(cache, select) -> None:
    """Applies `select` to the batch rows of every layer's keys and values (a StaticCache has no
    batch_repeat_interleave / batch_select_indices; its layers write into whatever tensors they hold)."""
    for layer in cache.layers:
        layer.keys, layer.values = select(layer.keys), select(layer.values)


def grow(cache, columns: int) -> None:
    """Room for `columns` more tokens in every layer (the attention mask is padded to the new length)."""
    import torch.nn.functional as F

    for layer in cache.layers:
        layer.keys, layer.values = F.pad(layer.keys, (0, 0, 0, columns)), F.pad(layer.values, (0, 0, 0, columns))
        layer.max_cache_len += columns
