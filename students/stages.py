"""train and evaluate as functions of (config, data dir, student)."""

import hashlib
import json

import polars as pl

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import read_table, write_table
from students.evaluate import evaluate_student, load_student
from students.model import load_tokenizer
from students.train import read_meta, train_student, write_meta
from tasks.arms import variant_of
from tasks.stages import arm_unavailable, captions_of

BASE = "base"  # the untuned student


def student_name(arm: str, method: str) -> str:
    return f"{arm}-{method}"


def students(cfg: FactoryConfig) -> list[str]:
    names = [student_name(a, m) for a in cfg.arms.arms for m in cfg.train.methods]
    return ([BASE] if cfg.evaluate.baseline else []) + names


def run_train(cfg: FactoryConfig, data: DataDir, arm: str, method: str) -> dict:
    out = data.student(cfg.run, student_name(arm, method))
    if reason := arm_unavailable(cfg, arm):
        meta = dict(arm=arm, method=method, fingerprint=f"skipped:{reason}", base_model=cfg.train.model,
                    train_examples=0, status="skipped", reason=reason, train_tokens=0, wall_s=0.0, device="none")
        write_meta(out, meta)
        return meta
    path = data.arm(arm) / "train.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `distillery arms` first")
    arm_df = read_table(path, "arms")
    return train_student(cfg.train, method, arm, arm_df, out)


def eval_problems(cfg: FactoryConfig, data: DataDir) -> pl.DataFrame:
    problems = read_table(data.table("problems"), "problems")
    return problems.filter(pl.col("split") == cfg.evaluate.split).sort("problem_id")


def eval_fingerprint(adapter: str, cfg: FactoryConfig, problem_ids: list[str]) -> str:
    payload = json.dumps([adapter, cfg.evaluate.model_dump(), cfg.train.model, problem_ids])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_evaluate(cfg: FactoryConfig, data: DataDir, student: str) -> dict:
    """Scores one student on the evaluation split; reuses answers whose fingerprint matches."""
    adapter_dir = None if student == BASE else data.student(cfg.run, student)
    meta = {"fingerprint": f"base:{cfg.train.model}", "arm": BASE, "method": "none"} if adapter_dir is None \
        else read_meta(adapter_dir)
    if meta is None:
        raise FileNotFoundError(f"{adapter_dir} has no trained adapter: run `distillery train` first")
    out = data.evals(cfg.run) / f"{student}.parquet"
    if meta.get("status") == "skipped":
        out.unlink(missing_ok=True)  # answers of an earlier adapter would not describe this one
        return {"student": student, "status": "skipped", "reason": meta.get("reason")}
    problems = eval_problems(cfg, data)
    key = eval_fingerprint(meta["fingerprint"], cfg, problems["problem_id"].to_list())
    old = read_table(out, "evals")
    if old.height and old["eval_fingerprint"][0] == key:
        return {"student": student, "status": "reused", "n": old.height}
    model = load_student(cfg.train.model, str(adapter_dir) if adapter_dir else None)
    info = dict(run=cfg.run, student=student, arm=meta["arm"], method=meta["method"], eval_fingerprint=key)
    df = evaluate_student(model, load_tokenizer(cfg.train.model), problems,
                          captions_of(data, cfg.caption.captioner), variant_of(meta["arm"]), info,
                          cfg.evaluate.max_new_tokens, cfg.evaluate.batch_size, cfg.evaluate.stop_at_answer)
    write_table(df, out, "evals")
    return {"student": student, "status": "evaluated", "n": df.height, "accuracy": df["correct"].mean()}
