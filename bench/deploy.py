"""Speed and memory of every deployment format of the embedded model on this CPU, as ratios to the
unquantized transformers checkpoint measured in the same run.

    LLAMA_CPP_DIR=... .venv/bin/python bench/deploy.py [--model embedded] [--problems 8] [--tokens 64] [--threads 2] [--max-new-tokens 128]

Each format is written (students/deploy.py) and measured in its own process (students/footprint.py):
generation and prompt tokens/s on the first prompt, peak resident memory while answering `--problems`
synthetic problems. Target: q4_k_m at least 3x the generation speed at under 40% of the memory.
Wait for /tmp/heavy.lock to be absent and hold it while this runs (shared cores).
"""

import argparse
import importlib.util
import tempfile
from pathlib import Path

from schemas.config import DeployConfig, FactoryConfig, SyntheticIngest
from schemas.paths import DataDir
from schemas.tables import read_table
from students.deploy import GGUF, Unavailable, merge, size_bytes, write_format
from students.deployment import measured
from tasks.ingest import ingest
from tasks.prompts import user_message


def prompts(root: Path, n: int) -> list[str]:
    data = DataDir(root)
    ingest(SyntheticIngest(n_problems=max(n * 3, 12)), data)
    rows = read_table(data.table("problems"), "problems").sort("problem_id").head(n).to_dicts()
    return [user_message(p, None, "plain", "cot") for p in rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=128, help="longest answer to each problem")
    args = ap.parse_args()
    deploy = DeployConfig(threads=args.threads, measure_tokens=args.tokens)
    cfg = FactoryConfig(deploy=deploy, evaluate={"max_new_tokens": args.max_new_tokens, "batch_size": 8})
    with tempfile.TemporaryDirectory() as tmp:
        asked = prompts(Path(tmp) / "data", args.problems)
        merged = merge(args.model, None, Path(tmp) / "safetensors")
        figures = {}
        for fmt in deploy.formats:
            try:
                path = write_format(fmt, merged, Path(tmp), deploy)
                if fmt in GGUF and importlib.util.find_spec("llama_cpp") is None:
                    raise Unavailable(f"written ({size_bytes(path) / 2**20:.1f} MiB), not measured: no llama-cpp-python")
                got = measured(fmt, path, asked, cfg)
            except Unavailable as e:
                print(f"{fmt}: not measured: {e}")
                continue
            figures[fmt] = dict(size=size_bytes(path), rss=got["peak_rss_mb"], gen=got["generation_tps"],
                                prompt=got["prompt_tps"], ttft=got["ttft_s"])
    ref = figures["safetensors"]
    print(f"{'format':12} {'MiB disk':>9} {'peak MiB':>9} {'gen tok/s':>10} {'prompt tok/s':>13} {'ttft s':>7} "
          f"{'gen x':>6} {'memory %':>9}")
    for fmt, f in figures.items():
        print(f"{fmt:12} {f['size'] / 2**20:9.1f} {f['rss']:9.0f} {f['gen']:10.1f} {f['prompt']:13.1f} "
              f"{f['ttft']:7.3f} {f['gen'] / ref['gen']:6.2f} {100 * f['rss'] / ref['rss']:8.0f}%")
    if "q4_k_m" in figures:
        q4 = figures["q4_k_m"]
        ok = q4["gen"] >= 3 * ref["gen"] and q4["rss"] < 0.4 * ref["rss"]
        print(f"target (q4_k_m >= 3x generation speed at < 40% memory): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
