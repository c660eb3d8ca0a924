"""`local` teacher: transformers on a small model (default: the embedded SmolLM2-135M)."""

import hashlib
import threading
import time

from tasks.teachers import Completion, Request, split_think


class LocalTeacher:
    backend = "local"
    def __init__(self, model: str = "embedded", batch_size: int = 16):
        self.model = model
        self.batch_size = batch_size
        self.identity = f"local/{model}"
        self._model = self._tok = None
        self._lock = threading.Lock()  # one generate at a time: it already uses every core

    @classmethod
    def from_config(cls, cfg) -> "LocalTeacher":
        return cls(cfg.model, batch_size=cfg.batch_size)

    def _load(self):
        if self._model is None:
            from students.model import load_model, load_tokenizer

            self._tok, self._model = load_tokenizer(self.model), load_model(self.model)
        return self._tok, self._model

    def complete(self, requests: list[Request]) -> list[Completion]:
        """Batches requests that share sampling parameters into one `generate` each."""
        out: dict[int, Completion] = {}
        groups: dict = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.params, []).append(i)
        for params, idx in groups.items():
            for i, c in zip(idx, self._generate([requests[i] for i in idx], params), strict=True):
                out[i] = c
        return [out[i] for i in range(len(requests))]

    def _generate(self, requests: list[Request], params) -> list[Completion]:
        import torch

        with self._lock:
            tok, model = self._load()
            chats = [[{"role": r, "content": c} for r, c in req.messages] for req in requests]
            enc = tok.apply_chat_template(chats, add_generation_prompt=True, padding=True,
                                          return_tensors="pt", return_dict=True).to(model.device)
            # Seeded from the batch's own requests, so a re-run of the same batch samples the same.
            seed = int(hashlib.sha256(repr([(r.messages, r.sample_index) for r in requests]).encode()).hexdigest()[:8], 16)
            torch.manual_seed(seed + params.seed)
            start = time.perf_counter()
            with torch.no_grad():
                gen = model.generate(**enc, do_sample=params.temperature > 0, temperature=params.temperature or None,
                                     top_p=params.top_p, max_new_tokens=params.max_new_tokens,
                                     pad_token_id=tok.pad_token_id)
            latency = (time.perf_counter() - start) / len(requests)  # the batch's time shared out
        new = gen[:, enc["input_ids"].shape[1]:]  # (B, T_new)
        prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
        return [self._completion(tok, row, int(p), latency) for row, p in zip(new, prompt_tokens, strict=True)]

    @staticmethod
    def _completion(tok, row, prompt_tokens: int, latency: float) -> Completion:
        ids = row.tolist()
        stop = tok.eos_token_id
        n = ids.index(stop) + 1 if stop in ids else len(ids)
        reasoning, content = split_think(tok.decode(ids[:n], skip_special_tokens=True))
        return Completion(content=content, reasoning=reasoning, finish_reason="stop" if stop in ids else "length",
                          prompt_tokens=prompt_tokens, completion_tokens=n, latency_s=latency)
