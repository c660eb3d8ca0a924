"""Students answering through vLLM's offline engine on a GPU (`evaluate.engine: vllm`): one engine
per base model for the whole process, each student's LoRA adapter a `LoRARequest` on it (as
`vllm serve --enable-lora` serves adapters), bf16. Soft-prompt and vlm students, and machines
without vLLM or a GPU, answer through transformers (students/generate.py), as on a CPU.
"""

import importlib.util
from functools import lru_cache
from pathlib import Path

from students.generate import Generated, cut

MAX_LORA_RANK = 64  # the largest adapter rank the engine reserves room for


def usable(adapter_dir: str | None, kind: str) -> str | None:
    """Why vLLM cannot answer for this student (None: it can)."""
    import torch

    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed"
    if not torch.cuda.is_available():
        return "no GPU"
    if kind != "causal_lm":
        return "a vlm student"
    if adapter_dir and '"LORA"' not in (Path(adapter_dir) / "adapter_config.json").read_text():
        return "not a LoRA adapter"
    return None


@lru_cache(maxsize=1)
def engine(base: str):
    from vllm import LLM

    from students.model import resolve

    return LLM(model=resolve(base), enable_lora=True, max_lora_rank=MAX_LORA_RANK, dtype="bfloat16", seed=0)


class VllmSolver:
    """The `Solver` interface (students/evaluate.py) over the shared engine."""

    def __init__(self, base: str, adapter_dir: str | None):
        from vllm.lora.request import LoRARequest

        from students.model import load_tokenizer

        self.llm, self.tok = engine(base), load_tokenizer(base)
        self.lora = LoRARequest(Path(adapter_dir).name, abs(hash(adapter_dir)) % 2**31 + 1, adapter_dir) \
            if adapter_dir else None

    def __call__(self, prompts: list[str], rows: range, max_new_tokens: int, *, temperature: float = 0.0,
                 top_p: float = 1.0, num_return_sequences: int = 1, stop_at_answer: bool = False) -> list[Generated]:
        from vllm import SamplingParams

        params = SamplingParams(n=num_return_sequences, temperature=temperature, max_tokens=max_new_tokens,
                                top_p=top_p if temperature > 0 else 1.0)
        outs = self.llm.chat([[{"role": "user", "content": p}] for p in prompts], params, lora_request=self.lora,
                             use_tqdm=False)
        result = []
        for o in outs:  # prompt-major, n completions each
            for c in o.outputs:
                kept, done = cut(self.tok, list(c.token_ids), stop_at_answer)
                result.append(Generated(self.tok.decode(kept, skip_special_tokens=True), len(o.prompt_token_ids),
                                        len(kept), done or c.finish_reason == "stop"))
        return result
