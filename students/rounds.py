"""Iterative rounds (the `distill` flow, as OpenVLThinker iterates): round 1 samples the configured
teacher; round r+1 samples round r's best student (`sample.teacher: student`), whose traces are
verified, selected and turned into arms like any teacher's and cached under its own identity.
A `vlm` (or `compose`) student teaches as it was trained and evaluated: shown each problem's picture (`sample.images`),
its caption only with `train.captions` (`sample.captions`), so the loop is OpenVLThinker's: SFT (and GRPO) -> the next round's traces.
Each round is a run of its own (RUN-r1, RUN-r2, ...: students, evals and report apart); the arms
directory holds the latest round's arms. `rounds.md` in reports/RUN says how accuracy moved.
"""

import json
from pathlib import Path

from schemas import atomic
from schemas.config import FactoryConfig
from schemas.errors import StageFailed
from schemas.paths import DataDir
from students.choose import best_student, run_evals


def round_run(cfg: FactoryConfig, r: int) -> str:
    """The run name of round r (1-based): the config's own when there is one round."""
    return cfg.run if cfg.rounds == 1 else f"{cfg.run}-r{r}"


def round_config(cfg: FactoryConfig, r: int, teacher_dir: Path | None) -> FactoryConfig:
    """Round r's config: its run name and, after round 1, the previous round's best student as teacher
    (the arms then come from that teacher's traces)."""
    data = cfg.model_dump()
    data["run"] = round_run(cfg, r)
    if teacher_dir is not None:  # a vlm student teaches shown each problem's picture, captioned as it trained
        vlm = cfg.train.student in ("vlm", "compose")
        data["sample"] |= {"teacher": "student", "model": str(teacher_dir.resolve()), "batch": False,
                           "images": data["sample"]["images"] or vlm,
                           "captions": cfg.train.captions if vlm else data["sample"]["captions"],
                           "engine": "transformers",  # a student is no GGUF; a vlm student answers in its own dtype
                           "dtype": "float32" if vlm else data["sample"]["dtype"]}
        data["arms"]["teacher"] = None
    return FactoryConfig.model_validate(data)


def round_teacher(cfg: FactoryConfig, data: DataDir) -> dict:
    """The round's trained student with the highest greedy accuracy on val (on the evaluated split when
    there is no val; `on_val` says which), read from the round's evals: {student, accuracy, n, split, on_val}."""
    best = best_student(run_evals(cfg, data), None)
    if best is None:
        raise StageFailed(f"round {cfg.run}: no student was trained and evaluated, so none can teach the next round "
                          "(see the train stage's reasons)")
    return best


def write_rounds(cfg: FactoryConfig, data: DataDir, rounds: list[dict]) -> Path:
    """rounds.md and rounds.json in reports/RUN: per round its teacher, every student's accuracy and the best."""
    out = data.report(cfg.run)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "rounds.json", json.dumps(rounds, indent=2))
    lines = [f"# {cfg.run}: {len(rounds)} rounds", "",
             "Each round's best student is its most accurate on the `val` split (test is used once, for each "
             "round's report) and teaches the next round; a round without val answers chose on the evaluated split "
             "and says so.", "",
             "| round | run | teacher | best student | chosen on | its accuracy there | students (accuracy) |",
             "|---|---|---|---|---|---|---|"]
    for r in rounds:
        others = ", ".join(f"{n} {a:.3f}" for n, a in sorted(r["accuracy"].items()))
        lines.append(f"| {r['round']} | {r['run']} | {r['teacher']} | {r['best']} | {r['chosen_on']} | "
                     f"{r['best_accuracy']:.3f} | {others} |")
    atomic.write_text(out / "rounds.md", "\n".join(lines) + "\n")
    return out / "rounds.md"
