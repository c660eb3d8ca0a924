"""Builders for ScienceQA-shaped data: the original release layout and a `datasets` copy."""

import io
import json
from pathlib import Path

from PIL import Image


def png(colour: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buf, format="PNG")
    return buf.getvalue()


ROWS = {
    "1": dict(question="Which of these states is farthest north?", choices=["West Virginia", "Louisiana", "Arizona"],
              answer=0, hint="", image="image.png", task="closed choice", grade="grade2", subject="social science",
              topic="geography", category="Geography", skill="Read a map: cardinal directions",
              lecture="Maps have four cardinal directions.", solution="West Virginia is farthest north.", split="train"),
    "2": dict(question="Which tense does the sentence use?", choices=["past tense", "future tense"], answer=1,
              hint="Mona will print her name.", image=None, task="closed choice", grade="grade2",
              subject="language science", topic="verbs", category="Verb tense", skill="Identify verb tense",
              lecture="Present tense verbs tell you about something that is happening now.",
              solution="The verb ends in will, so it is future tense.", split="val"),
    "3": dict(question="Is a pencil a solid or a liquid?", choices=["a solid", "a liquid"], answer=0, hint="",
              image="image.png", task="closed choice", grade="grade1", subject="natural science", topic="physics",
              category="States of matter", skill="Solids and liquids", lecture="Matter is made of tiny particles.",
              solution="A pencil is a solid.", split="test"),
    "4": dict(question="Broken answer index", choices=["a", "b"], answer=5, hint="", image=None, task="", grade="",
              subject="", topic="", category="", skill="", lecture="", solution="", split="train"),
    "5": dict(question=None, choices=["a", "b"], answer=0, hint="", image=None, split="train"),
}
CAPTIONS = {"1": "A map of the United States.", "3": "A yellow pencil on a desk."}


def write_release_layout(root: Path) -> Path:
    qa = root / "scienceqa"
    qa.mkdir(parents=True)
    (qa / "problems.json").write_text(json.dumps(ROWS))
    (qa / "pid_splits.json").write_text(json.dumps({"train": ["1", "4", "5"], "val": ["2"], "test": ["3"]}))
    (root / "captions.json").write_text(json.dumps({"captions": CAPTIONS}))
    for pid, colour in (("1", "red"), ("3", "blue")):
        split = ROWS[pid]["split"]
        (qa / "images" / split / pid).mkdir(parents=True)
        (qa / "images" / split / pid / "image.png").write_bytes(png(colour))
    return root


def write_hf_dataset(path: Path) -> Path:
    """derek-thomas/ScienceQA's columns, saved with `save_to_disk` (the hub is unreachable here)."""
    import datasets

    def part(pids):
        cols = ["question", "choices", "answer", "hint", "task", "grade", "subject", "topic", "category",
                "skill", "lecture", "solution"]
        rows = [{c: ROWS[p].get(c) for c in cols} | {"image": Image.open(io.BytesIO(png("red"))) if ROWS[p]["image"] else None}
                for p in pids]
        features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                      "choices": datasets.Sequence(datasets.Value("string")),
                                      "answer": datasets.Value("int8"),
                                      **{c: datasets.Value("string") for c in cols if c not in ("question", "choices", "answer")}})
        return datasets.Dataset.from_list(rows, features=features)

    dd = datasets.DatasetDict({"train": part(["1", "4"]), "validation": part(["2"]), "test": part(["3"])})
    dd.save_to_disk(str(path))
    return path
