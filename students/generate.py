"""One generate loop for every local model: the `local` teacher's sampling and the students'
evaluation both call `generate`.

Chats are batched with left padding. The prompts are prefilled once into a preallocated KV cache
(`StaticCache`: each token's keys and values are written in place, where a DynamicCache copies the
whole cache every token; it grows by `GROW` columns when full), prompts that begin alike sharing the
prefill of their common start (students/prefill.py); the cache is repeated for their k samples
(`num_return_sequences`). Then one
forward runs per token for the rows still going; rows that have finished leave the batch (and the
cache) every `CHUNK` tokens, or at once when half the batch is done, so a batch costs about what
its rows generate rather than its longest row times its size. Greedy answers are those of
transformers' `generate` (tests/test_generate.py).

With `stop_at_answer`, a row finishes once the sentence that commits to its final answer ("The
answer is (B).") is complete, which the prompts ask every answer to end with; never inside an open
`<think>` block or an open quote (the `mistakes` arm quotes a wrong attempt's "The answer is (B)."
before the answer it commits to), never at "the answer is not ...".
"""

import re
from dataclasses import dataclass

from students.prefill import GROW, cache_arg, cache_rows, grow, peft_rows, prefill

CHUNK = 16  # tokens between two re-layouts of the cache for rows that finished (each one copies the cache)
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


def eos_ids(model, tok) -> set[int]:
    """Every id that ends a row, as `generate` stops: the tokenizer's eos and the generation config's
    (an id or a list: Qwen and Llama-3 instruct models end turns with one and text with another)."""
    ids = set() if tok.eos_token_id is None else {tok.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    return ids | set(configured if isinstance(configured, list) else [] if configured is None else [configured])


def cut(tok, ids: list[int], stop_at_answer: bool, eos: set[int] | None = None) -> tuple[list[int], bool]:
    """The row's tokens up to eos (included; `eos`: every id that ends a row, default the tokenizer's)
    or the end of its final answer sentence; finished? (A row stopped at its answer is padded after
    it, and pad may be eos: the answer is looked for first.)"""
    eos = {tok.eos_token_id} if eos is None else eos
    at = next((i for i, t in enumerate(ids) if t in eos), None)
    end = len(ids) if at is None else at + 1
    if stop_at_answer and answer_done(tok.decode(ids[:end], skip_special_tokens=True)):
        return ids[:first_done(tok, ids[:end])], True
    return ids[:end], at is not None


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
             adapter_names: list[str] | None = None, template: dict | None = None) -> list[Generated]:
    """`num_return_sequences` generations per chat (chat-major order); greedy when temperature is 0.
    `adapter_names`: a peft LoRA model's adapter for each chat (`__base__`: none), one batch of mixed adapters.
    `template`: more arguments of apply_chat_template (the tools offered, a chat template: students/tools.py)."""
    import torch

    enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True, return_tensors="pt",
                                  return_dict=True, **(template or {})).to(model.device)
    eos = eos_ids(model, tok)
    if soft_prompt(model) or processed(model) or sliding(model):
        return whole(model, tok, enc, max_new_tokens, temperature, top_p, num_return_sequences, stop_at_answer,
                     adapter_names)
    with torch.inference_mode():
        tails = decode(model, enc, max_new_tokens, picker(model, temperature, top_p), num_return_sequences,
                       Watch(tok, stop_at_answer, eos), adapter_names)
    return outputs(tok, enc, num_return_sequences, tails, stop_at_answer, eos)


# generation-config settings the hand-written loop does not apply: a model that sets one answers
# through `generate` itself, so its answers stay those of transformers
PROCESSORS = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "min_new_tokens": None, "min_length": 0,
              "bad_words_ids": None, "suppress_tokens": None, "begin_suppress_tokens": None,
              "forced_bos_token_id": None, "forced_eos_token_id": None, "sequence_bias": None,
              "encoder_repetition_penalty": 1.0, "exponential_decay_length_penalty": None}


def processed(model) -> bool:
    config = getattr(model, "generation_config", None)
    return config is not None and any(getattr(config, k, off) not in (off, None) for k, off in PROCESSORS.items())


def sliding(model) -> bool:
    """Sliding-window or hybrid attention (Gemma 2/3, Mistral v0.1): the grown static cache assumes full attention."""
    config = getattr(model, "config", None)
    config = getattr(config, "get_text_config", lambda: config)()
    return bool(getattr(config, "sliding_window", None) or getattr(config, "layer_types", None)
                and any(t != "full_attention" for t in config.layer_types))


def decode(model, enc, max_new_tokens: int, pick, n: int, watch: "Watch",
           adapter_names: list[str] | None = None) -> list[list[int]]:
    """The new token ids of each of the n samples per prompt: one prefill into a preallocated cache
    (students/prefill.py), repeated n times, then one forward per token for the rows still going (each
    with its adapter)."""
    import torch

    first = prefill(model, enc, max_new_tokens, adapter_names)
    cache, prompt_len = first.cache, first.mask.shape[1]
    cache_rows(cache, lambda t: t.repeat_interleave(n, dim=0))
    logits, position = first.logits.repeat_interleave(n, dim=0), first.position.repeat_interleave(n, dim=0) + 1
    full = torch.cat([first.mask, first.mask.new_zeros(first.mask.shape[0], max_new_tokens)], dim=1)
    full = full.repeat_interleave(n, dim=0)
    rows, tails = list(range(full.shape[0])), [[] for _ in range(full.shape[0])]  # rows: the output of each batch row
    names = None if adapter_names is None else [a for a in adapter_names for _ in range(n)]  # (B * n,)
    for step in range(max_new_tokens):
        token = pick(logits.float())  # (b,); a bfloat16 model's logits sampled in float32, as `generate` does
        going = watch.step(rows, tails, token.tolist())
        if not going or step + 1 == max_new_tokens:
            break
        if len(going) < len(rows) and (step % CHUNK == CHUNK - 1 or 2 * len(going) <= len(rows)):
            index = torch.tensor([rows.index(r) for r in going], device=token.device)
            cache_rows(cache, lambda t, index=index: t[index])  # a copy of the cache: a few times a batch
            token, position, full, rows = token[index], position[index], full[index], going
            names = None if names is None else [names[i] for i in index.tolist()]
        if prompt_len + step + 1 > cache.layers[0].max_cache_len:
            grow(cache, GROW)
        full[:, prompt_len + step] = 1
        logits = model(input_ids=token[:, None], attention_mask=full[:, :prompt_len + step + 1], position_ids=position,
                       **cache_arg(model, cache), use_cache=True, **peft_rows(names)).logits[:, -1]
        position = position + 1
    return tails


class Watch:
    """Which rows go on after each token: not those that wrote eos, nor (with `stop_at_answer`) those whose
    text holds a complete final answer sentence. A row's text grows by one token's text a step (each token
    decoded once); an answer seen there is confirmed on the row's whole decoded text, as `cut` reads it."""

    def __init__(self, tok, stop_at_answer: bool, eos: set[int] | None = None):
        self.tok, self.stop_at_answer = tok, stop_at_answer
        self.eos = {tok.eos_token_id} if eos is None else eos
        self.texts: dict[int, str] = {}  # output row -> its new text so far
        self.done: set[int] = set()

    def step(self, rows: list[int], tails: list[list[int]], tokens: list[int]) -> list[int]:
        """Appends each row's token (rows already done get none); the rows still going."""
        for row, t in zip(rows, tokens, strict=True):
            if row not in self.done:
                tails[row].append(t)
                if self.ends(row, tails[row], t):
                    self.done.add(row)
        return [r for r in rows if r not in self.done]

    def ends(self, row: int, tail: list[int], token: int) -> bool:
        if token in self.eos:
            return True
        if not self.stop_at_answer:
            return False
        text = self.texts[row] = self.texts.get(row, "") + self.piece(tail)
        if answer_done(text) or len(tail) % CHUNK == 0:  # the piece-wise text may miss one: look every CHUNK
            return answer_done(self.tok.decode(tail, skip_special_tokens=True))
        return False

    def piece(self, tail: list[int]) -> str:
        """The last token's text in its context: a SentencePiece tokenizer drops a lone piece's leading
        space ("▁is" decodes to "is"), which would read "theansweris" and never stop."""
        before = self.tok.decode(tail[-3:-1], skip_special_tokens=True)
        now = self.tok.decode(tail[-3:], skip_special_tokens=True)
        return now[len(before):] if now.startswith(before) else self.tok.decode(tail[-1:], skip_special_tokens=True)


def picker(model, temperature: float, top_p: float):
    """logits (b, vocab) -> next tokens (b,): argmax, or a draw as `generate` samples (its default top-k is
    50 unless the model's generation config says otherwise)."""
    import torch

    if temperature <= 0:
        return lambda logits: logits.argmax(dim=-1)
    top_k = getattr(model.generation_config, "top_k", None)
    top_k = 50 if top_k is None else top_k  # 0: no top-k

    def pick(logits):
        index, probs = sampling_weights(logits, temperature, top_p, top_k)
        return index.gather(1, torch.multinomial(probs, num_samples=1)).squeeze(1)

    return pick


def sampling_weights(logits, temperature: float, top_p: float, top_k: int):
    """(token ids (b, k), their probabilities (b, k)) after transformers' own temperature and top-p
    warpers on the k best logits: the distribution `generate` samples from (temperature, top-k, top-p
    over the whole vocabulary), without sorting 49,152 logits a token."""
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    best, index = logits.topk(min(top_k or logits.shape[-1], logits.shape[-1]), dim=-1)
    if temperature != 1.0:
        best = TemperatureLogitsWarper(temperature)(None, best)
    if top_p < 1.0:
        best = TopPLogitsWarper(top_p)(None, best)
    return index, best.softmax(dim=-1)


def outputs(tok, enc, n: int, tails: list[list[int]], stop_at_answer: bool,
            eos: set[int] | None = None) -> list[Generated]:
    prompt_tokens = enc["attention_mask"].sum(dim=1).repeat_interleave(n).tolist()
    result = []
    for tail, p in zip(tails, prompt_tokens, strict=True):
        kept, done = cut(tok, tail, stop_at_answer, eos)
        result.append(Generated(tok.decode(kept, skip_special_tokens=True), int(p), len(kept), done))
    return result


def soft_prompt(model) -> bool:
    """A peft prompt-learning model prepends virtual tokens in its forward: its cache is not the prompt's."""
    config = getattr(model, "active_peft_config", None)
    return bool(config is not None and config.is_prompt_learning)


def whole(model, tok, enc, max_new_tokens, temperature, top_p, n, stop_at_answer,
          adapter_names: list[str] | None = None) -> list[Generated]:
    """One plain `generate` call for the batch (soft-prompt students, models whose generation config
    asks for logits processors, sliding-window attention)."""
    import torch

    if adapter_names is not None and n > 1:
        raise ValueError("mixed-adapter batches sample through the fast loop only; this model needs generate()")
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
    stops = [answer_stop(tok, enc["input_ids"].shape[1])] if stop_at_answer else None
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                             num_return_sequences=n, stopping_criteria=stops, **sampling, **peft_rows(adapter_names))
    return outputs(tok, enc, n, out[:, enc["input_ids"].shape[1]:].tolist(), stop_at_answer, eos_ids(model, tok))
