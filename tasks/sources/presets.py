"""Presets: the column mapping, split names and small fixes of each dataset the research uses,
so `ingest: {source: mathvista}` needs no mapping. Split names map the dataset's splits to
ours; splits a preset does not list are not read (MathVista's `test` has no public answers).

| preset | hub id | splits read | notes |
|---|---|---|---|
| mathvista | AI4Math/MathVista | testmini -> test | metadata kept: source (origin), category, context, grade, skills, task (topic); the query's "Hint:" as hint |
| aokvqa | HuggingFaceM4/A-OKVQA | train, validation -> test | direct_answers as aliases, the first rationale as solution |
| clevr_cogent | MMInstruction/Clevr_CoGenT_TrainA_R1 | train | R1 style: `problem`, `<answer> 3 </answer>` in `solution`, `thinking` as solution; ValA / ValB: `splits: {train: test}` |
| sat | array/SAT | train, val, test | `answers` are the options, `correct_answer` their text; the first of `image_bytes` |
| cvbench | nyu-visionx/CV-Bench | test | answer "(C)"; task as topic, type (2D / 3D) as category, source as origin |
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
THINK_TAG = re.compile(r"</?think>", re.I)


@dataclass(frozen=True)
class Preset:
    hub_id: str
    columns: dict[str, str]
    splits: dict[str, str]  # the dataset's split -> ours; others are not read
    fix: Callable[[dict, dict], dict] | None = None  # (raw row, mapped fields) -> mapped fields
    name: str | None = None  # hub config
    notes: dict = field(default_factory=dict)


def mathvista_fix(row: dict, f: dict) -> dict:
    if f["image"] is None:  # the release layout and some copies have only the path
        f["image"] = row.get("image")
    query = row.get("query") or ""
    if query.startswith("Hint:") and not f["hint"]:
        f["hint"] = query.split("\n", 1)[0].removeprefix("Hint:").strip()
    if f["id"] is None:
        f["id"] = row.get("_id")
    return f | {"subject": f["subject"] or "math"}


def clevr_fix(row: dict, f: dict) -> dict:
    if f["question"] is None:
        f["question"] = row.get("question")
    if f["answer"] is None:
        m = ANSWER_TAG.search(str(row.get("solution") or ""))
        f["answer"] = m.group(1).strip() if m else row.get("answer")
    if f["solution"]:
        f["solution"] = THINK_TAG.sub("", str(f["solution"])).strip()
    return f


PRESETS: dict[str, Preset] = {
    "mathvista": Preset(
        "AI4Math/MathVista",
        dict(id="pid", question="question", choices="choices", answer="answer", image="decoded_image", unit="unit",
             precision="precision", answer_type="answer_type", category="metadata.category",
             context="metadata.context", grade="metadata.grade", skills="metadata.skills", origin="metadata.source",
             topic="metadata.task", caption="caption"),
        {"testmini": "test"}, mathvista_fix),
    "aokvqa": Preset(
        "HuggingFaceM4/A-OKVQA",
        dict(id="question_id", question="question", choices="choices", answer_index="correct_choice_idx",
             aliases="direct_answers", solution="rationales", image="image"),
        {"train": "train", "validation": "test"}),
    "clevr_cogent": Preset(
        "MMInstruction/Clevr_CoGenT_TrainA_R1",
        dict(question="problem", solution="thinking", image="image"), {"train": "train"}, clevr_fix),
    "sat": Preset(
        "array/SAT",
        dict(question="question", choices="answers", answer="correct_answer", image="image_bytes",
             topic="question_type"),
        {"train": "train", "val": "val", "test": "test"}),
    "cvbench": Preset(
        "nyu-visionx/CV-Bench",
        dict(id="idx", question="question", choices="choices", answer="answer", image="image", topic="task",
             category="type", origin="source"),
        {"test": "test"}),
}
