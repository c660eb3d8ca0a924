"""decontam: training problems that are copies of validation or test problems.

A training problem is flagged when its normalised text (question, hint and sorted options;
lower case, punctuation and spacing dropped) matches that of a val or test problem exactly
or with a rapidfuzz ratio of at least `near_match` (0-100), unless both show images and the
images differ: in visual datasets one templated question over another image is another problem.
The arms leave flagged problems out by default; the report counts them either way.
"""

import re
import unicodedata

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process

from schemas.tables import SCHEMAS

CHUNK = 2048  # training texts compared per cdist call: bounds the (CHUNK, n_eval) score matrix


def normalise(question: str, hint: str | None, choices: list[str] | None) -> str:
    text = " ".join([question or "", hint or "", *sorted(choices or [])])
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def texts_of(df: pl.DataFrame) -> list[str]:
    return [normalise(q, h, c) for q, h, c in zip(df["question"].to_list(), df["hint"].to_list(), df["choices"].to_list(), strict=True)]


def same_picture(a: str | None, b: str | None) -> bool:
    """Whether two problems' images allow them to be one problem: equal, or either has none."""
    return a is None or b is None or a == b


def contamination(problems: pl.DataFrame, near_match: float = 95.0) -> pl.DataFrame:
    """One row per flagged training problem: its closest val/test match and the score (100 = exact)."""
    train = problems.filter(pl.col("split") == "train")
    held = problems.filter(pl.col("split").is_in(["val", "test"]))
    rows = []
    if train.is_empty() or held.is_empty():
        return pl.DataFrame(rows, schema=SCHEMAS["contamination"])
    train_texts, held_texts = texts_of(train), texts_of(held)
    held_sha, held_id, held_split = held["image_sha"].to_list(), held["problem_id"].to_list(), held["split"].to_list()
    train_sha, train_id = train["image_sha"].to_list(), train["problem_id"].to_list()
    for start in range(0, len(train_texts), CHUNK):
        scores = process.cdist(train_texts[start:start + CHUNK], held_texts, scorer=fuzz.ratio,
                               score_cutoff=near_match, dtype=np.uint8, workers=-1)  # (chunk, n_held), 0 = below
        for i, j in zip(*np.nonzero(scores), strict=True):
            t = start + int(i)
            if same_picture(train_sha[t], held_sha[j]):
                exact = train_texts[t] == held_texts[j]
                rows.append(dict(problem_id=train_id[t], match_id=held_id[j], match_split=held_split[j],
                                 score=100.0 if exact else float(scores[i, j])))
    df = pl.DataFrame(rows, schema=SCHEMAS["contamination"])
    return df.sort("score", descending=True).unique("problem_id", keep="first").sort("problem_id")
