"""deploy, the measurement: one format loaded in a fresh process that answers the evaluation prompts and
times a fixed generation, so its peak resident memory is that format's alone (interpreter and libraries
included: what a user's process would hold). The parent grades the answers (`students.evals.eval_frame`).

    python -m students.footprint JOB.json OUT.json    # JOB: {format, path, prompts, ...}; see `measure`

Speed: the first prompt, chat-formatted; time to first token = prefill + the first token; prompt
tokens/s = prompt tokens / that time; generation tokens/s = the `measure_tokens` - 1 later tokens
over the time they took (greedy, end of sequence suppressed so every run makes as many tokens).
"""

import json
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from students.generate import Generated, answer_done

CONTEXT = 2048  # llama.cpp's KV cache is allocated for this many tokens up front (transformers' grows)


@dataclass
class Speed:
    prompt_tokens: int
    ttft_s: float  # seconds to the first generated token
    prompt_tps: float
    generation_tps: float


def peak_rss_mb() -> float:
    """This process's peak resident memory since exec: VmHWM (ru_maxrss would carry the parent's peak over
    fork + exec on Linux)."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # macOS: bytes


class TransformersModel:
    """A merged or torchao-quantized checkpoint answering through the evaluation's `generate`."""

    def __init__(self, path: str, threads: int):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()
        self.tok = AutoTokenizer.from_pretrained(path)
        self.tok.pad_token = self.tok.pad_token or self.tok.eos_token
        self.tok.padding_side = "left"

    def answer(self, prompts: list[str], max_new_tokens: int, stop_at_answer: bool) -> list[Generated]:
        from students.generate import generate

        return generate(self.model, self.tok, [[{"role": "user", "content": p}] for p in prompts], max_new_tokens,
                        stop_at_answer=stop_at_answer)

    def speed(self, prompt: str, tokens: int) -> Speed:
        import torch

        enc = self.tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
        n = enc["input_ids"].shape[1]
        eos = [[self.tok.eos_token_id]]
        with torch.no_grad():
            began = time.perf_counter()
            self.model.generate(**enc, max_new_tokens=1, do_sample=False, pad_token_id=self.tok.pad_token_id)
            first = time.perf_counter() - began
            began = time.perf_counter()
            self.model.generate(**enc, max_new_tokens=tokens, do_sample=False, bad_words_ids=eos,
                                pad_token_id=self.tok.pad_token_id)
            total = time.perf_counter() - began
        return Speed(n, first, n / first, (tokens - 1) / max(total - first, 1e-9))


class LlamaCppModel:
    """A GGUF file answering through llama-cpp-python, with the chat template the converter stored in it."""

    def __init__(self, path: str, threads: int):
        from llama_cpp import Llama

        self.llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=CONTEXT, verbose=False,
                         seed=0)

    def stream(self, prompt: str, max_tokens: int, **kw):
        self.llm.reset()
        return self.llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=max_tokens,
                                               temperature=0.0, top_k=1, stream=True, **kw)

    def one(self, prompt: str, max_new_tokens: int, stop_at_answer: bool) -> Generated:
        text, new, finished = "", 0, False
        for chunk in self.stream(prompt, max_new_tokens):
            choice = chunk["choices"][0]
            text += choice["delta"].get("content", "") or ""
            new += "content" in choice["delta"]
            if choice.get("finish_reason") == "stop" or (stop_at_answer and answer_done(text)):
                finished = True
                break
        return Generated(text, max(self.llm.n_tokens - new, 0), new, finished)

    def answer(self, prompts: list[str], max_new_tokens: int, stop_at_answer: bool) -> list[Generated]:
        return [self.one(p, max_new_tokens, stop_at_answer) for p in prompts]

    def speed(self, prompt: str, tokens: int) -> Speed:
        began, first, count = time.perf_counter(), None, 0
        for chunk in self.stream(prompt, tokens, logit_bias={self.llm.token_eos(): -1e9}):
            if "content" in chunk["choices"][0]["delta"]:
                count += 1
                first = first or time.perf_counter() - began
        total = time.perf_counter() - began
        n = max(self.llm.n_tokens - count, 1)
        return Speed(n, first, n / first, (count - 1) / max(total - first, 1e-9))


def measure(job: dict) -> dict:
    """Answers job["prompts"] (batches of job["batch_size"]) and times one generation; figures and answers."""
    began = time.perf_counter()
    kind = LlamaCppModel if job["format"] in ("q8_0", "q4_k_m") else TransformersModel
    model = kind(job["path"], job["threads"])
    load_s = time.perf_counter() - began
    answers = []
    prompts, size = job["prompts"], job["batch_size"] if kind is TransformersModel else 1
    for start in range(0, len(prompts), size):
        began = time.perf_counter()
        got = model.answer(prompts[start:start + size], job["max_new_tokens"], job["stop_at_answer"])
        per = (time.perf_counter() - began) / len(got)
        answers += [asdict(g) | {"seconds": per} for g in got]
    speed = model.speed(prompts[0], job["measure_tokens"])
    return dict(answers=answers, load_s=load_s, peak_rss_mb=peak_rss_mb(), **asdict(speed))


if __name__ == "__main__":
    job_file, out_file = sys.argv[1:3]
    Path(out_file).write_text(json.dumps(measure(json.loads(Path(job_file).read_text()))))
