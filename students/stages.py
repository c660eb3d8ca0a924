"""train and evaluate as functions of (config, data dir, student); the text LoRA students of a run answer
over one shared base model (students/shared.py); reference models: students/references.py."""

import hashlib
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from schemas.config import FactoryConfig
from schemas.errors import InputError
from schemas.experiment import HYPOTHESES
from schemas.paths import DataDir
from schemas.tables import read_table, write_table
from students.backends import opened
from students.evals import judge_reasoning, rouge_reasoning
from students.evaluate import Solver, evaluate_student
from students.loading import load_student
from students.model import load_tokenizer, release_memory
from students.rows import eval_captions, training_rows
from students.shared import BASE_ROWS, Member, evaluate_shared, load_shared, shareable
from students.tools import SPECS, TOOL_TEMPLATE, TOOLS
from students.train import read_meta, train_student, write_meta
from students.vlm import image_of, load_processor
from tasks.arms import arm_not_built, arm_unavailable, variant_of

log = logging.getLogger(__name__)
BASE = "base"  # the untuned student
REFERENCE = "reference:"  # prefix of a reference model's name in evals


@dataclass(frozen=True)
class Student:
    arm: str
    method: str
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.arm}-{self.method}" + (f"-s{self.seed}" if self.seed else "")


def student_name(arm: str, method: str, seed: int = 0) -> str:
    return Student(arm, method, seed).name


def trained(cfg: FactoryConfig) -> list[Student]:
    """Every (arm, method, seed) the config trains, GRPO last (it may start from another student)."""
    everyone = [Student(a, m, s) for a in cfg.arms.arms for m in cfg.train.methods for s in cfg.train.seeds]
    return sorted(everyone, key=lambda s: "grpo" in s.method)


def students(cfg: FactoryConfig) -> list[str]:
    return ([BASE] if cfg.evaluate.baseline else []) + [s.name for s in trained(cfg)]


def require_trained(cfg: FactoryConfig, data: DataDir) -> None:
    """Every student the config evaluates has been trained (or skipped with a reason)."""
    missing = [s for s in students(cfg) if s != BASE and read_meta(data.student(cfg.run, s)) is None]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise InputError(f"{len(missing)} of the students of run {cfg.run!r} have no trained adapter ({shown}) in "
                         f"{data.student(cfg.run, 'x').parent}: run `distillery train` first")


def run_train(cfg: FactoryConfig, data: DataDir, arm: str, method: str, seed: int = 0) -> dict:
    out = data.student(cfg.run, student_name(arm, method, seed))
    if reason := arm_unavailable(cfg, arm) or arm_not_built(data, arm):
        meta = dict(arm=arm, method=method, seed=seed, fingerprint=f"skipped:{reason}", base_model=cfg.train.model,
                    train_examples=0, status="skipped", reason=reason, train_tokens=0, wall_s=0.0, device="none")
        write_meta(out, meta)
        return meta
    path = data.arm(arm) / "train.parquet"
    if not path.exists():
        raise InputError(f"{path} is missing: run `distillery arms` first")
    arm_df = read_table(path, "arms")
    init_dir = grpo_start(cfg, data, arm, method, seed)
    if init_dir is not None and (why := read_meta(init_dir).get("reason")):  # nothing to continue from
        meta = dict(arm=arm, method=method, seed=seed, fingerprint=f"skipped:{why}", base_model=cfg.train.model,
                    train_examples=0, status="skipped", reason=f"starts from {init_dir.name}, not trained: {why}",
                    train_tokens=0, wall_s=0.0, device="none")
        write_meta(out, meta)
        return meta
    depends = cfg.verify.model_dump_json(exclude={"judge"}) if "grpo" in method else ""  # the reward's grading
    return train_student(cfg.train, method, arm, arm_df, out, seed, training_rows(cfg, data, arm_df, method),
                         init_dir, depends)


def grpo_start(cfg: FactoryConfig, data: DataDir, arm: str, method: str, seed: int):
    """The adapter a GRPO student starts from (None: the base model); it must have been trained or skipped."""
    if "grpo" not in method or (method == "grpo" and cfg.train.init == "base"):
        return None
    name = student_name(arm, "lora", seed) if method == "lora+grpo" else cfg.train.init
    start = data.student(cfg.run, name)
    if read_meta(start) is None:
        raise InputError(f"{arm}-{method} starts from student {name}, which was not trained: train it first")
    return start


def eval_problems(cfg: FactoryConfig, data: DataDir) -> pl.DataFrame:
    """The evaluation splits' problems (`evaluate.splits`), of `evaluate.sources` when it names some."""
    splits = cfg.evaluate.splits
    problems = read_table(data.table("problems"), "problems").filter(pl.col("split").is_in(splits))
    if cfg.evaluate.sources:
        have = set(problems["source"].unique())
        if missing := [s for s in cfg.evaluate.sources if s not in have]:
            raise InputError(f"evaluate.sources {missing} have no {'/'.join(splits)} problems in "
                             f"{data.table('problems')} (sources there: {sorted(have)}): ingest them first")
        problems = problems.filter(pl.col("source").is_in(cfg.evaluate.sources))
    return problems.sort("split", "problem_id")


def eval_fingerprint(adapter: str, cfg: FactoryConfig, problem_ids: list[str]) -> str:
    """What a student's answers depend on besides its adapter; with tools on, the tools' wording too."""
    tools = [[SPECS, TOOL_TEMPLATE]] if cfg.evaluate.tools else []  # absent otherwise: older answers stay reused
    payload = json.dumps([adapter, cfg.evaluate.fingerprinted(), cfg.train.model, cfg.train.student, cfg.train.captions,
                          problem_ids, *tools])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def score_reasoning(cfg: FactoryConfig, data: DataDir, df: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """Reasoning scores: the configured judge (cached requests), else ROUGE-L with the gold solution."""
    if cfg.evaluate.judge is None:
        return rouge_reasoning(df, problems, cfg.evaluate.rouge_threshold)
    with opened(cfg.evaluate.judge, cfg, data) as judge:
        return judge_reasoning(df, problems, cfg.evaluate.judge, judge)[0]


def reused(out, key: str) -> pl.DataFrame | None:
    old = read_table(out, "evals")
    return old if old.height and old["eval_fingerprint"][0] == key else None


@dataclass
class Pending:
    """A student to answer: what evaluating it needs once its model is loaded."""
    run: str
    student: str
    adapter_dir: Path | None
    meta: dict
    out: Path
    problems: pl.DataFrame
    variants: list[str]
    key: str

    @property
    def info(self) -> dict:
        return dict(run=self.run, student=self.student, arm=self.meta["arm"], method=self.meta["method"],
                    seed=self.meta.get("seed"), eval_fingerprint=self.key)


def base_fingerprint(cfg: FactoryConfig) -> str:
    """The untuned student's identity; an untrained composition's parts too (a trained one's train fingerprint has them)."""
    parts = f":{cfg.train.compose.model_dump_json()}" if cfg.train.student == "compose" else ""
    return f"base:{cfg.train.model}{parts}"


def pending(cfg: FactoryConfig, data: DataDir, student: str) -> dict | Pending:
    """The result of a student that needs no new answers (skipped, reused), else what answering it needs."""
    adapter_dir = None if student == BASE else data.student(cfg.run, student)
    meta = {"fingerprint": base_fingerprint(cfg), "arm": BASE, "method": "none", "seed": None} \
        if adapter_dir is None else read_meta(adapter_dir)
    if meta is None:
        raise InputError(f"{adapter_dir} has no trained adapter: run `distillery train` first")
    out = data.evals(cfg.run) / f"{student}.parquet"
    if meta.get("status") == "skipped":
        out.unlink(missing_ok=True)  # answers of an earlier adapter would not describe this one
        return {"student": student, "status": "skipped", "reason": meta.get("reason")}
    problems, variants = eval_problems(cfg, data), eval_variants(cfg, meta["arm"])
    key = eval_fingerprint(f"{meta['fingerprint']}:{variants}", cfg, problems["problem_id"].to_list())
    if (old := reused(out, key)) is not None:
        return {"student": student, "status": "reused"} | greedy_accuracy(old, cfg, variants[0])
    return Pending(cfg.run, student, adapter_dir, meta, out, problems, variants, key)


def finish(cfg: FactoryConfig, data: DataDir, job: Pending, df: pl.DataFrame) -> dict:
    df = score_reasoning(cfg, data, df, job.problems)
    write_table(df, job.out, "evals")
    return {"student": job.student, "status": "evaluated"} | greedy_accuracy(df, cfg, job.variants[0])


def run_evaluate(cfg: FactoryConfig, data: DataDir, student: str) -> dict:
    """Scores one student on the evaluation split; reuses answers whose fingerprint matches."""
    job = pending(cfg, data, student)
    if isinstance(job, dict):
        return job
    solver = solver_for(cfg, data, str(job.adapter_dir) if job.adapter_dir else None, job.problems)
    with grading_judge(cfg, data) as judge:
        df = evaluate_student(solver, job.problems, eval_captions(cfg, data), job.variants, job.info, cfg.evaluate,
                              job.meta.get("seed") or 0, cfg.verify, judge)
    del solver
    release_memory()
    return finish(cfg, data, job, df)


def run_evaluations(cfg: FactoryConfig, data: DataDir, names: list[str]) -> dict[str, dict]:
    """`run_evaluate` of each named student; with `evaluate.shared`, the text LoRA students (and the base)
    that need answers share one loaded base model and answer in mixed-adapter batches (students/shared.py)."""
    jobs = {s: pending(cfg, data, s) for s in names}
    group = [j for j in jobs.values() if isinstance(j, Pending) and shareable(cfg, j.adapter_dir)]
    share = cfg.evaluate.shared and not cfg.evaluate.tools and len(group) > 1  # the tool loop answers one at a time
    done = evaluate_group(cfg, data, group) if share else {}
    return {s: done.get(s) or (j if isinstance(j, dict) else run_evaluate(cfg, data, s)) for s, j in jobs.items()}


def evaluate_group(cfg: FactoryConfig, data: DataDir, group: list[Pending]) -> dict[str, dict]:
    adapters = {j.student: f"s{i}" for i, j in enumerate(group) if j.adapter_dir}  # peft names: no dots
    model = load_shared(cfg.train.model, {adapters[j.student]: str(j.adapter_dir) for j in group if j.adapter_dir})
    members = [Member(adapters.get(j.student, BASE_ROWS), j.variants, j.info,
                      j.meta.get("seed") or 0) for j in group]
    with grading_judge(cfg, data) as judge:
        frames = evaluate_shared(Solver(model, load_tokenizer(cfg.train.model)), group[0].problems,
                                 eval_captions(cfg, data), members, cfg.evaluate, cfg.verify, judge)
    del model
    release_memory()
    return {j.student: finish(cfg, data, j, df) for j, df in zip(group, frames, strict=True)}


def eval_variants(cfg: FactoryConfig, arm: str) -> list[str]:
    """The prompt variants (test-time context: `lecture` shows the lecture) an arm's students are evaluated
    under, their own first, then the treatment's of each declared hypothesis they are a side of, so both
    sides of H3.4 / H3.5 are also asked alike; the base student: plain; a reference: every variant the
    evaluated arms are asked under (H3.6 compares it under the best arm's). With `evaluate.tools`, every
    student also answers under `tools` (with the tools offered; references do not)."""
    own = {a: variant_of(a) for a in cfg.arms.arms}
    tools = [TOOLS] if cfg.evaluate.tools else []  # the students' answers with the tools offered (H1)
    if arm == BASE:
        return ["plain", *tools]
    if arm not in own:
        return list(dict.fromkeys(["plain", *sorted(own.values())]))
    pairs = [(h.treatment, h.control) for h in [*HYPOTHESES, *cfg.report.hypotheses]]
    return list(dict.fromkeys([own[arm], *(own[t] for t, c in pairs if arm in (t, c) and {t, c} <= own.keys()),
                               *tools]))


def greedy_accuracy(df: pl.DataFrame, cfg: FactoryConfig, variant: str) -> dict:
    """n and accuracy of the greedy answers to the first evaluation prompt, under the model's own prompt
    variant, on the split a model is chosen on (`val` where evaluated, else the first split); the test
    accuracy beside it."""
    greedy = df.filter((pl.col("decoding") == "greedy") & (pl.col("prompt_style") == cfg.evaluate.prompts[0])
                       & (pl.col("variant") == variant))
    on = selection_split(cfg)
    chosen, test = greedy.filter(pl.col("split") == on), greedy.filter(pl.col("split") == "test")
    return {"split": on, "n": chosen.height, "accuracy": chosen["correct"].mean(),
            "test_accuracy": test["correct"].mean() if test.height else None}


def selection_split(cfg: FactoryConfig) -> str:
    return "val" if "val" in cfg.evaluate.splits else cfg.evaluate.splits[0]


@contextmanager
def grading_judge(cfg: FactoryConfig, data: DataDir):
    """The answer extractor `verify.judge` (a CachedTeacher) for one stage, or None without one."""
    if cfg.verify.judge is None:
        yield None
        return
    with opened(cfg.verify.judge, cfg, data) as judge:
        yield judge


def solver_for(cfg: FactoryConfig, data: DataDir, adapter_dir: str | None, problems: pl.DataFrame):
    """The student loaded for answering: through vLLM when configured and possible; else a vlm with each
    problem's picture, a text model with its tokenizer."""
    if cfg.evaluate.engine == "vllm":
        from students.vllm_engine import VllmSolver, usable

        if (why := usable(adapter_dir, cfg.train.student)) is None:
            return VllmSolver(cfg.train.model, adapter_dir)
        log.warning("evaluate.engine vllm: %s answers through transformers (%s)", adapter_dir or "the base", why)
    model = load_student(cfg.train.model, adapter_dir, cfg.train.student, cfg.train.compose)
    if cfg.train.student in ("vlm", "compose"):
        processor = model.processor if cfg.train.student == "compose" else load_processor(cfg.train.model)
        return Solver(model, processor=processor, images=[image_of(data, sha) for sha in problems["image_sha"]])
    return Solver(model, load_tokenizer(cfg.train.model))
