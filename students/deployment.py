"""deploy as a function of (config, data dir, student): every format of `deploy.formats` written under
deploy/RUN/formats/STUDENT/, each measured in its own process (students/footprint.py) on the prompts
`evaluate` asks (the student's own prompt variant, the first chain-of-thought style), its answers graded
by the one grading entry point, and the figures in deploy/RUN/measurements.json, the answers in
deploy/RUN/evals.parquet (student `NAME@FORMAT`); the chosen format with its model card in
deploy/RUN/STUDENT/ (students/deploy_export.py).

    distillery deploy --config configs/deploy.yaml
"""

import importlib.util
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

from schemas import atomic
from schemas.config import FactoryConfig
from schemas.errors import InputError
from schemas.paths import DataDir
from schemas.tables import read_table, write_table
from students.choose import best_student, run_evals
from students.deploy import GGUF, Unavailable, merge, size_bytes, write_format
from students.deploy_export import export_student, push_student
from students.evals import eval_frame
from students.generate import Generated
from students.rows import eval_captions
from students.stages import BASE, eval_variants
from students.train import read_meta
from tasks.export import hub_token
from tasks.prompts import user_message

log = logging.getLogger(__name__)
BEST = "best"  # deploy.students: the most accurate trained student on val


def chosen(cfg: FactoryConfig, data: DataDir, names: list[str]) -> list[str]:
    """deploy.students with `best` replaced by the student chosen on val (`students.choose.best_student`)."""
    out = []
    for name in names:
        if name == BEST:
            if "val" not in cfg.evaluate.splits:  # best_student would fall back to test: chosen on the reported split
                raise InputError("deploy.students names `best`, which is chosen on val: add val to evaluate.splits "
                                 "(or name the student)")
            best = best_student(run_evals(cfg, data), None)
            if best is None:
                raise InputError(f"deploy.students names `best`, but run {cfg.run!r} has no evaluated trained "
                                 "student: run `distillery evaluate` first")
            name = best["student"]
        out.append(name)
    return list(dict.fromkeys(out))


def problems_of(cfg: FactoryConfig, data: DataDir) -> pl.DataFrame:
    problems = read_table(data.table("problems"), "problems").filter(pl.col("split") == cfg.deploy.split)
    problems = problems.sort("problem_id")
    return problems.head(cfg.deploy.limit) if cfg.deploy.limit else problems


def prompts_of(cfg: FactoryConfig, data: DataDir, arm: str, rows: list[dict]) -> tuple[list[str], dict]:
    """The evaluation's prompts for these problems (the arm's own variant; cot where evaluated) and the
    evals columns they are asked under."""
    variant = eval_variants(cfg, arm)[0]
    style = "cot" if "cot" in cfg.evaluate.prompts else cfg.evaluate.prompts[0]
    captions = eval_captions(cfg, data)
    return ([user_message(p, captions.get(p["problem_id"]), variant, style) for p in rows],
            dict(variant=variant, prompt_style=style, decoding="greedy"))


def measured(fmt: str, path: Path, prompts: list[str], cfg: FactoryConfig) -> dict:
    """students/footprint.py on one format in a fresh process: its answers and figures."""
    job = dict(format=fmt, path=str(path), prompts=prompts, max_new_tokens=cfg.evaluate.max_new_tokens,
               batch_size=cfg.evaluate.batch_size, stop_at_answer=cfg.evaluate.stop_at_answer,
               threads=cfg.deploy.threads, measure_tokens=cfg.deploy.measure_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        job_file, out_file = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_file.write_text(json.dumps(job))
        done = subprocess.run([sys.executable, "-m", "students.footprint", str(job_file), str(out_file)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise InputError(f"measuring {fmt} ({path}) failed: {done.stderr.strip()[-600:]}")
        return json.loads(out_file.read_text())


def graded(got: dict, rows: list[dict], info: dict, cfg: FactoryConfig) -> pl.DataFrame:
    answers = [(Generated(a["text"], a["prompt_tokens"], a["new_tokens"], a["finished"]), a["seconds"])
               for a in got["answers"]]
    return eval_frame(rows, answers, info, 1, cfg.verify)


def figures(student: str, fmt: str, path: Path, got: dict, df: pl.DataFrame) -> dict:
    judged = df.filter(pl.col("correct").is_not_null())
    return dict(student=student, format=fmt, status="measured", reason=None, path=str(path),
                size_bytes=size_bytes(path), peak_rss_mb=round(got["peak_rss_mb"], 1), load_s=round(got["load_s"], 3),
                prompt_tps=round(got["prompt_tps"], 2), generation_tps=round(got["generation_tps"], 2),
                ttft_s=round(got["ttft_s"], 4), n=judged.height,
                accuracy=judged["correct"].mean() if judged.height else None)


def missing(student: str, fmt: str, reason: str) -> dict:
    return dict(student=student, format=fmt, status="unavailable", reason=reason, path=None, size_bytes=None,
                peak_rss_mb=None, load_s=None, prompt_tps=None, generation_tps=None, ttft_s=None, n=0, accuracy=None)


def run_deploy(cfg: FactoryConfig, data: DataDir, student: str) -> list[dict]:
    """Every format of one student written, measured and graded; one figures row per format."""
    adapter = None if student == BASE else data.student(cfg.run, student)
    meta = {"arm": BASE, "method": "none", "seed": None} if adapter is None else read_meta(adapter)
    if meta is None or meta.get("status") == "skipped":
        raise InputError(f"{student} has no trained adapter in {adapter}: run `distillery train` first")
    token, rows = hub_token(cfg), problems_of(cfg, data).to_dicts()  # a push that cannot happen fails first
    if not rows:
        raise InputError(f"no {cfg.deploy.split} problems in {data.table('problems')}: run `distillery ingest` first")
    prompts, asked = prompts_of(cfg, data, meta["arm"], rows)
    info = dict(run=cfg.run, student=student, arm=meta["arm"], method=meta["method"], seed=meta.get("seed"),
                eval_fingerprint="deploy") | asked
    result, frames = every_format(cfg, adapter, data.deploy(cfg.run) / "formats" / student, prompts, rows, info)
    write_results(data.deploy(cfg.run), student, result, frames)
    folder = export_student(cfg, data.deploy(cfg.run), student, meta, result)
    if folder is not None and token:
        push_student(folder, cfg.export.push_to_hub, cfg.run, student, cfg.export.private, token)
    return result


def every_format(cfg: FactoryConfig, adapter: Path | None, out_dir: Path, prompts: list[str], rows: list[dict],
                 info: dict) -> tuple[list[dict], list[pl.DataFrame]]:
    """The merged checkpoint, then each format of deploy.formats: figures rows and evals frames."""
    student = info["student"]
    if cfg.train.student != "causal_lm":
        why = f"{cfg.train.student} students are not deployed yet (no mmproj export)"
        return [missing(student, fmt, why) for fmt in cfg.deploy.formats], []
    try:
        merged = merge(cfg.train.model, str(adapter) if adapter else None, out_dir / "safetensors")
    except Unavailable as e:
        return [missing(student, fmt, str(e)) for fmt in cfg.deploy.formats], []
    result, frames = [], []
    for fmt in cfg.deploy.formats:
        row, df = one_format(cfg, fmt, merged, out_dir, prompts, rows, info)
        result.append(row)
        frames += [df] if df is not None else []
    return result, frames


def one_format(cfg: FactoryConfig, fmt: str, merged: Path, out_dir: Path, prompts: list[str], rows: list[dict],
               info: dict) -> tuple[dict, pl.DataFrame | None]:
    """One format written, answered in its own process and graded: its figures row and evals frame."""
    student = info["student"]
    try:
        path = write_format(fmt, merged, out_dir, cfg.deploy)
    except Unavailable as e:
        log.warning("deploy %s %s: %s", student, fmt, e)
        return missing(student, fmt, str(e)), None
    if fmt in GGUF and importlib.util.find_spec("llama_cpp") is None:  # written; answering needs the runtime
        why = "written, not measured: llama-cpp-python is not installed (make llama-cpp)"
        return missing(student, fmt, why) | dict(status="written", path=str(path), size_bytes=size_bytes(path)), None
    got = measured(fmt, path, prompts, cfg)
    df = graded(got, rows, info | dict(student=f"{student}@{fmt}"), cfg)
    return figures(student, fmt, path, got, df), df


def write_results(root: Path, student: str, rows: list[dict], frames: list[pl.DataFrame]) -> None:
    """This student's figures and answers replace its earlier ones in measurements.json and evals.parquet."""
    old = read_measurements(root)
    keep = [r for r in old if r["student"] != student]
    atomic.write_text(root / "measurements.json", json.dumps(keep + rows, indent=2))
    evals = read_table(root / "evals.parquet", "evals")
    evals = evals.filter(~pl.col("student").str.starts_with(f"{student}@"))
    write_table(pl.concat([evals, *frames]), root / "evals.parquet", "evals")


def read_measurements(root: Path) -> list[dict]:
    path = Path(root) / "measurements.json"
    return json.loads(path.read_text()) if path.exists() else []
