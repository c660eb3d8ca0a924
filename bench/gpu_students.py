"""The students' GPU path, checked on a CUDA machine: a tiny random LLaVA trained with LoRA on an
image arm and evaluated with its pictures, then GRPO from the base and from that adapter with the
pictures in the prompts; a tiny Llama trained with LoRA, then GRPO from that adapter (bf16 on the
GPU); a composed VLM (tiny ViT + projector + tiny Llama) trained in its two stages; every student
evaluated through the same stages as on a CPU. Prints the
device, dtype, steps and seconds of each, as JSON (also to $OUT/gpu_students.json when set).

    DISTILLERY_MODELS=DIR python bench/gpu_students.py   # DIR/smollm2-135m-instruct: the tokenizer
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> dict:
    import torch
    from conftest import make_tiny_llama, make_tiny_vit, make_tiny_vlm, raw_arm_data

    from schemas.config import FactoryConfig
    from students.stages import run_evaluate, run_train
    from students.vlm import load_vlm

    tmp = Path(tempfile.mkdtemp())
    data = raw_arm_data(tmp / "data", 24)
    vlm, llama = str(make_tiny_vlm(tmp / "vlm")), str(make_tiny_llama(tmp / "llama"))
    out = {"cuda": torch.cuda.is_available(), "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
           else "cpu", "vlm_dtype": str(load_vlm(vlm).dtype)}
    vit = str(make_tiny_vit(tmp / "vit"))
    grpo = {"num_generations": 4, "max_steps": 4, "max_completion_length": 32}
    runs = [("vlm", vlm, {"student": "vlm", "methods": ["lora", "grpo", "lora+grpo"], "grpo": grpo},
             ["lora", "grpo", "lora+grpo"]),
            ("compose", llama, {"student": "compose", "compose": {"encoder": vit, "stage1_max_steps": 4}}, ["lora"]),
            ("rl", llama, {"methods": ["lora", "lora+grpo"], "grpo": grpo}, ["lora", "lora+grpo"])]
    for run, model, train, methods in runs:
        cfg = FactoryConfig.model_validate({
            "data_dir": str(data.root), "run": run, "arms": {"arms": ["raw"]},
            "train": {"model": model, "batch_size": 4, "max_length": 384, **train},
            "evaluate": {"max_new_tokens": 16, "baseline": False}})
        for method in methods:
            start = time.perf_counter()
            meta = run_train(cfg, data, "raw", method)
            evaluated = run_evaluate(cfg, data, f"raw-{method}")
            out[f"{run}:raw-{method}"] = dict(status=meta["status"], device=meta.get("device"), steps=meta.get("steps"),
                                              loss=meta.get("train_loss"), evaluated=evaluated["status"],
                                              n=evaluated.get("n"), seconds=round(time.perf_counter() - start, 1))
    return out


if __name__ == "__main__":
    result = main()
    print(json.dumps(result, indent=2))
    if os.environ.get("OUT"):
        (Path(os.environ["OUT"]) / "gpu_students.json").write_text(json.dumps(result, indent=2))
