"""`local` teacher: transformers on a small model (default: the embedded SmolLM2-135M), or llama.cpp on a
GGUF (`sample.engine`: the embedded model's own file or a `.gguf` path); `student`
teacher: a trained student (base + adapter) answering the next round's problems: a text student
reads the prompt, a `vlm` student is also shown the picture each request carries (`sample.images`)."""

import hashlib
import importlib.util
import threading
import time

from schemas.config import EMBEDDED
from schemas.config.data import dtype_suffix
from tasks.teachers import Completion, Request, split_think


class LocalTeacher:
    backend = "local"

    def __init__(self, model: str = "embedded", batch_size: int = 16, dtype: str = "float32"):
        self.model = model
        self.batch_size = batch_size
        self.dtype = dtype
        self.identity = f"local/{model}" + dtype_suffix(dtype)
        self._model = self._tok = None
        self._lock = threading.Lock()  # one generate at a time: it already uses every core

    @classmethod
    def from_config(cls, cfg) -> "LocalTeacher":
        if cls is LocalTeacher and engine_of(cfg.model, getattr(cfg, "engine", "transformers"),
                                             getattr(cfg, "dtype", "float32")) == "llama_cpp":
            return LlamaCppTeacher(cfg.model, batch_size=cfg.batch_size)
        return cls(cfg.model, batch_size=cfg.batch_size, dtype=getattr(cfg, "dtype", "float32"))

    def _load(self):
        if self._model is None:
            from students.model import load_model, load_tokenizer

            self._tok, self._model = load_tokenizer(self.model), in_dtype(load_model(self.model), self.dtype)
        return self._tok, self._model

    def close(self) -> None:
        """Lets the model go (half a GiB for the embedded one) once the stage is done with it."""
        from students.model import release_memory

        with self._lock:
            self._model = self._tok = None
        release_memory()

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
        """One batch; when every chat is asked the same number of times (k sample indices), each
        is prefilled once and sampled that many times."""
        import torch

        chats: dict[tuple, list[int]] = {}  # (messages, pictures) -> positions in `requests`
        for i, r in enumerate(requests):
            chats.setdefault((r.messages, r.images), []).append(i)
        n = len(next(iter(chats.values())))
        if any(len(idx) != n for idx in chats.values()):
            chats, n = {(r.messages, r.images, i): [i] for i, r in enumerate(requests)}, 1
        with self._lock:
            # Seeded from the batch's own requests, so a re-run of the same batch samples the same.
            seed = int(hashlib.sha256(repr([(r.messages, r.sample_index) for r in requests]).encode()).hexdigest()[:8], 16)
            torch.manual_seed(seed + params.seed)
            self._seed = seed + params.seed  # for engines that take a seed rather than torch's state
            start = time.perf_counter()
            out = self._answer([requests[idx[0]] for idx in chats.values()], params, n)
            latency = (time.perf_counter() - start) / len(requests)  # the batch's time shared out
        order = [i for idx in chats.values() for i in idx]  # chat-major, as `generate` returns them
        completions: list[Completion | None] = [None] * len(requests)
        for i, g in zip(order, out, strict=True):
            reasoning, content = split_think(g.text)
            completions[i] = Completion(content=content, reasoning=reasoning,
                                        finish_reason="stop" if g.finished else "length",
                                        prompt_tokens=g.prompt_tokens, completion_tokens=g.new_tokens, latency_s=latency)
        return completions

    def _answer(self, firsts: list[Request], params, n: int) -> list:
        """n answers (students.generate.Generated) to each distinct request, request-major."""
        from students.generate import generate

        tok, model = self._load()
        return generate(model, tok, [[{"role": r, "content": c} for r, c in req.messages] for req in firsts],
                        params.max_new_tokens, temperature=params.temperature, top_p=params.top_p,
                        num_return_sequences=n, stop_at_answer=params.stop_at_answer)


def in_dtype(model, dtype: str):
    """The model with its weights in `dtype` (float32: as loaded; converted in place, the float32 copy let go)."""
    import torch

    return model if dtype == "float32" else model.to(getattr(torch, dtype))


def engine_of(model: str, engine: str, dtype: str = "float32") -> str:
    """`sample.engine` resolved: `auto` is llama_cpp when llama-cpp-python is installed and the model is a
    GGUF (the embedded model ships as one), else transformers; transformers whenever `sample.dtype` asks for
    bfloat16 (llama.cpp computes on its GGUF's own weights)."""
    if engine != "auto" or dtype != "float32":
        return "transformers" if engine == "auto" else engine
    gguf = model == EMBEDDED or model.endswith(".gguf")
    return "llama_cpp" if gguf and importlib.util.find_spec("llama_cpp") is not None else "transformers"


class LlamaCppTeacher(LocalTeacher):
    """The `local` teacher on a GGUF through llama.cpp (students/llama_cpp_engine.py). Its weights stay
    quantized, so its answers differ from the transformers path's now and then: they are cached under an
    identity of their own (`local/embedded+llama.cpp`), never mixed with transformers' answers."""

    def __init__(self, model: str = EMBEDDED, batch_size: int = 16):
        super().__init__(model, batch_size)
        self.identity = f"local/{model}+llama.cpp"

    def _load(self):
        if self._model is None:
            from students.llama_cpp_engine import LlamaCppEngine

            self._model = LlamaCppEngine(self.model)
            self._tok = self._model.tok
        return self._tok, self._model

    def close(self) -> None:
        with self._lock:
            engine, self._model = self._model, None
        if engine is not None:
            engine.close()
        super().close()

    def _answer(self, firsts: list[Request], params, n: int) -> list:
        _, engine = self._load()
        return engine.generate([[{"role": r, "content": c} for r, c in req.messages] for req in firsts],
                               params.max_new_tokens, temperature=params.temperature, top_p=params.top_p,
                               num_return_sequences=n, stop_at_answer=params.stop_at_answer,
                               seed=self._seed)  # the batch's seed, set by `_generate` under the lock


class StudentTeacher(LocalTeacher):
    """A trained student as teacher (`sample.teacher: student`, `sample.model`: its directory,
    students/RUN/NAME). Its answers are cached under an identity naming the student and its adapter's
    fingerprint, so a retrained student is a new teacher and an unchanged one is asked nothing twice."""

    def __init__(self, adapter_dir: str, batch_size: int = 16, dtype: str = "float32"):
        from pathlib import Path

        from schemas.errors import InputError

        meta = trained_student(adapter_dir)
        self.kind = meta.get("student_kind", "causal_lm")
        if dtype != "float32" and self.kind != "causal_lm":
            raise InputError(f"sample.dtype {dtype}: a {self.kind} student teacher answers in the dtype it loads "
                             "in (float32 on a CPU, bfloat16 on a GPU); set sample.dtype float32")
        super().__init__(meta["base_model"], batch_size, dtype)
        path = Path(adapter_dir)
        self.adapter_dir = str(path)
        self.identity = f"student/{path.parent.name}/{path.name}@{meta['fingerprint'][:8]}" + dtype_suffix(dtype)

    def _load(self):
        """(tokenizer or a vlm's processor, the student with its adapter; a compose student: its directory's
        parts and their processor)."""
        if self._model is None:
            from students.loading import load_student
            from students.model import load_tokenizer
            from students.vlm import load_processor

            self._model = in_dtype(load_student(self.model, self.adapter_dir, self.kind), self.dtype)
            self._tok = self._model.processor if self.kind == "compose" else \
                load_processor(self.model) if self.kind == "vlm" else load_tokenizer(self.model)
        return self._tok, self._model

    def _answer(self, firsts: list[Request], params, n: int) -> list:
        """A vlm or compose student answers each request's user message shown the request's picture (the
        data directory's image its ImageRef names; requests carry at most one), a text student as a local model."""
        if self.kind == "causal_lm":
            return super()._answer(firsts, params, n)
        from students.vlm import picture, vlm_generate

        processor, model = self._load()
        return vlm_generate(model, processor, [r.messages[-1][1] for r in firsts],
                            [picture(r.images[0].path) if r.images else None for r in firsts], params.max_new_tokens,
                            temperature=params.temperature, top_p=params.top_p, num_return_sequences=n,
                            stop_at_answer=params.stop_at_answer)


def trained_student(adapter_dir: str) -> dict:
    """The train_meta.json of a student that can teach: trained, and of a kind that answers prompts."""
    from pathlib import Path

    from schemas.errors import InputError
    from students.train import read_meta

    meta = read_meta(Path(adapter_dir))
    if meta is None or meta.get("status") != "trained":
        why = "holds no trained student" if meta is None else f"holds a skipped student ({meta.get('reason')})"
        raise InputError(f"sample.model {adapter_dir!r} {why}: a student teacher is a trained adapter's "
                         "directory, students/RUN/NAME in the data directory")
    kind = meta.get("student_kind", "causal_lm")
    if kind not in ("causal_lm", "vlm", "compose"):
        raise InputError(f"sample.model {adapter_dir!r} is a {kind} student; a student teacher is a "
                         "causal_lm, vlm or compose student")
    return meta
