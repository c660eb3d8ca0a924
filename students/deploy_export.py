"""deploy, the exports: per student, the chosen format (`deploy.export`, else the first one written)
copied to deploy/RUN/STUDENT/ with a model card saying what it was trained on, its accuracy and
footprint as measured, and how to run it; with `export.push_to_hub`, pushed to that repo as a model
(folder RUN/STUDENT), as the arms are pushed as datasets."""

import shutil
from pathlib import Path

from schemas.atomic import replace_dir, sweep, temp_path
from schemas.config import FactoryConfig
from students.deploy import GGUF

RUN_GGUF = """```sh
llama-cli -m {file} -p "{question}" -n 128 -t {threads}
llama-server -m {file} -t {threads} --port 8080   # an OpenAI-compatible endpoint
```
or in Python (`pip install llama-cpp-python`):
```python
from llama_cpp import Llama
llm = Llama(model_path="{file}", n_threads={threads})
print(llm.create_chat_completion([{{"role": "user", "content": "{question}"}}])["choices"][0]["message"]["content"])
```"""
RUN_TRANSFORMERS = """```python
from transformers import AutoModelForCausalLM, AutoTokenizer  # int8 / int4 also need `pip install torchao`
model, tok = AutoModelForCausalLM.from_pretrained("."), AutoTokenizer.from_pretrained(".")
chat = tok.apply_chat_template([{{"role": "user", "content": "{question}"}}], add_generation_prompt=True,
                               return_tensors="pt", return_dict=True)
print(tok.decode(model.generate(**chat, max_new_tokens=128)[0, chat["input_ids"].shape[1]:], skip_special_tokens=True))
```"""
QUESTION = "Which is a mammal? (A) shark (B) dolphin. Think step by step and end with: The answer is"


def exported(rows: list[dict], wanted: str) -> dict | None:
    """The figures row of the format to export: the configured one if it was written, else the first written."""
    written = [r for r in rows if r["status"] in ("measured", "written")]
    return next((r for r in written if r["format"] == wanted), written[0] if written else None)


def figures_line(r: dict) -> str:
    size = f"{r['size_bytes'] / 2**20:.1f} MiB on disk"
    if r["status"] != "measured":
        return f"{size}; not measured here ({r['reason']})"
    return (f"{size}; peak memory {r['peak_rss_mb']:.0f} MiB while answering; {r['prompt_tps']:.1f} prompt and "
            f"{r['generation_tps']:.1f} generated tokens/s, first token in {r['ttft_s']:.3f} s; "
            + ("no gradable answer" if r.get("accuracy") is None else f"accuracy {r['accuracy'] * 100:.1f}% on {r['n']} problems"))


def model_card(cfg: FactoryConfig, student: str, meta: dict, row: dict, rows: list[dict], threads: int) -> str:
    trained = ("not fine-tuned (the zero-shot baseline)" if meta["arm"] == "base" else
               f"trained on arm `{meta['arm']}` ({meta.get('train_examples', '?')} examples), method "
               f"`{meta['method']}`, seed {meta.get('seed')}")
    file = Path(row["path"]).name
    how = RUN_GGUF.format(file=file, threads=threads, question=QUESTION) if row["format"] in GGUF else \
        RUN_TRANSFORMERS.format(question=QUESTION)
    lines = [f"# {student} ({row['format']})", "", f"A distillery student of run `{cfg.run}`, base model "
             f"`{cfg.train.model}`, {trained}.", "",
             f"Figures on the {cfg.deploy.split} split, measured on the CPU of the machine that built it "
             f"({threads} threads):", ""]
    lines += [f"- **{r['format']}**: {figures_line(r)}" for r in rows if r["status"] in ("measured", "written")]
    lines += ["", "## How to run it", "", how, ""]
    return "\n".join(lines)


def export_student(cfg: FactoryConfig, root: Path, student: str, meta: dict, rows: list[dict]) -> Path | None:
    """deploy/RUN/STUDENT/: the chosen format and README.md, replaced in one step; None: nothing written."""
    row = exported(rows, cfg.deploy.export)
    if row is None:
        return None
    final = Path(root) / student
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep(final.parent)
    tmp = temp_path(final)
    src = Path(row["path"])
    try:
        shutil.copytree(src, tmp) if src.is_dir() else (tmp.mkdir(), shutil.copy2(src, tmp / src.name))
        (tmp / "README.md").write_text(model_card(cfg, student, meta, row, rows, cfg.deploy.threads))
        replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def push_student(folder: Path, repo: str, run: str, student: str, private: bool, token: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), path_in_repo=f"{run}/{student}", repo_id=repo, repo_type="model",
                      commit_message=f"distillery deploy: {student} of run {run}")
