"""deploy, the formats: a student merged into its base weights and written as each deployment format.

| format        | written by                                                    | runs in            |
|---------------|---------------------------------------------------------------|--------------------|
| `safetensors` | peft `merge_and_unload` + `save_pretrained` (the student's dtype) | transformers       |
| `int8`        | torchao `Int8WeightOnlyConfig` through transformers' `TorchAoConfig` | transformers |
| `int4`        | torchao `IntxWeightOnlyConfig(int4, group of int4_group_size)` | transformers       |
| `q8_0`        | llama.cpp's `convert_hf_to_gguf.py --outtype q8_0`             | llama-cpp-python   |
| `q4_k_m`      | the converter (f16) then llama.cpp's quantizer (`llama_model_quantize`) | llama-cpp-python |

torchao, not optimum-quanto: it is PyTorch's own maintained library, a 3 MB wheel for this torch, and
its checkpoints save as safetensors and load with a plain `from_pretrained`; quanto took 160 s to
quantize a 2-layer model to int4 here and is in maintenance. On an x86 CPU torchao 0.18 has no
packed int4 kernel for float32 (its packed layouts need CUDA, mslk or ARM), so `int4` stores one
4-bit value per byte: its accuracy is int4's, its size is about int8's (the report shows both).

Each writer returns the format's path, or raises `Unavailable` with the reason (no llama.cpp).
"""

import ctypes
import os
import subprocess
import sys
from pathlib import Path

from schemas import atomic
from schemas.config import DeployConfig
from schemas.errors import InputError
from students.loading import load_student
from students.model import load_tokenizer

TRANSFORMERS = ("safetensors", "int8", "int4")  # formats answered through transformers; the others: llama.cpp
GGUF = ("q8_0", "q4_k_m")


class Unavailable(Exception):
    """A format that cannot be written here; the message says why and what to install."""


def merge(base: str, adapter_dir: str | None, out: Path) -> Path:
    """The student's LoRA merged into the base weights, with the base's tokenizer, as a checkpoint."""
    model = load_student(base, adapter_dir)
    if getattr(model, "peft_config", None):  # a soft prompt stays a peft model: no plain checkpoint holds it
        raise Unavailable("a prompt-tuning student has no merged checkpoint yet (its soft prompt is not exported)")
    return save_dir(out, lambda tmp: (model.save_pretrained(tmp), load_tokenizer(base).save_pretrained(tmp)))


def save_dir(out: Path, write) -> Path:
    """`write(tmp)` fills a temporary directory that then replaces `out`: no half-written format."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_path(out)
    write(tmp)
    atomic.replace_dir(tmp, out)
    return out


def torchao_config(fmt: str, cfg: DeployConfig):
    import torch

    try:
        from torchao.quantization import Int8WeightOnlyConfig, IntxWeightOnlyConfig
        from torchao.quantization.granularity import PerGroup
    except ImportError as e:
        raise Unavailable(f"{fmt} needs torchao: make deploy-extra, or pip install -e '.[deploy]' ({e})") from None

    if fmt == "int8":
        return Int8WeightOnlyConfig()
    return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(cfg.int4_group_size))


def quantized(merged: Path, fmt: str, cfg: DeployConfig, out: Path) -> Path:
    """A weight-only quantized checkpoint of the merged model (linear layers; embeddings stay as they are)."""
    import torch
    from transformers import AutoModelForCausalLM, TorchAoConfig

    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32,
                                                 quantization_config=TorchAoConfig(torchao_config(fmt, cfg)))
    return save_dir(out, lambda tmp: (model.save_pretrained(tmp), load_tokenizer(str(merged)).save_pretrained(tmp)))


def llama_cpp_dir(cfg: DeployConfig) -> Path:
    """The llama.cpp source tree holding `convert_hf_to_gguf.py`."""
    where = cfg.llama_cpp_dir or os.environ.get("LLAMA_CPP_DIR") or str(Path(sys.prefix) / "llama.cpp")
    if not (Path(where) / "convert_hf_to_gguf.py").is_file():
        raise Unavailable(f"no llama.cpp converter in {where}: run `make deploy-tools` (or set deploy.llama_cpp_dir "
                          "/ LLAMA_CPP_DIR to a llama.cpp checkout)")
    return Path(where)


def convert(merged: Path, outtype: str, out: Path, cfg: DeployConfig) -> Path:
    """llama.cpp's converter on the merged checkpoint (outtype f16 / q8_0 / ...), atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_path(out)
    cmd = [sys.executable, str(llama_cpp_dir(cfg) / "convert_hf_to_gguf.py"), str(merged), "--outfile", str(tmp),
           "--outtype", outtype]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise InputError(f"convert_hf_to_gguf.py failed on {merged}: {done.stderr.strip().splitlines()[-1:]}")
    os.replace(tmp, out)
    return out


def q4_k_m(merged: Path, out: Path, cfg: DeployConfig) -> Path:
    """Q4_K_M through llama.cpp's own quantizer, from an f16 conversion (which is then removed)."""
    try:
        import llama_cpp
    except ImportError as e:
        raise Unavailable(f"q4_k_m needs llama.cpp's quantizer: make llama-cpp, or pip install -e '.[llama]' (llama-cpp-python: {e})") \
            from None
    f16 = convert(merged, "f16", out.with_suffix(".f16.gguf"), cfg)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.nthread = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, cfg.threads
    tmp = atomic.temp_path(out)
    code = llama_cpp.llama_model_quantize(str(f16).encode(), str(tmp).encode(), ctypes.byref(params))
    f16.unlink()
    if code != 0:
        tmp.unlink(missing_ok=True)
        raise InputError(f"llama_model_quantize failed on {f16} (code {code})")
    os.replace(tmp, out)
    return out


def write_format(fmt: str, merged: Path, out_dir: Path, cfg: DeployConfig) -> Path:
    """The format's file or directory under out_dir (`merged` is the safetensors checkpoint)."""
    if fmt == "safetensors":
        return merged
    if fmt in ("int8", "int4"):
        return quantized(merged, fmt, cfg, out_dir / fmt)
    if fmt == "q8_0":
        return convert(merged, "q8_0", out_dir / "model.q8_0.gguf", cfg)
    return q4_k_m(merged, out_dir / "model.q4_k_m.gguf", cfg)


def size_bytes(path: Path) -> int:
    """Bytes on disk of a file, or of every file under a directory."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
