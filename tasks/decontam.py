"""decontam: training problems that are copies of validation or test problems, from any source.

A training problem is a `text` copy when its normalised text (question, hint and sorted options;
lower case, punctuation and spacing dropped) matches that of a val or test problem exactly or
with a rapidfuzz ratio of at least `near_match` (0-100), unless both show images and the images
are different pictures: in visual datasets one templated question over another image is another
problem. Within one source a picture is its bytes (a dataset stores its images one way, and
its near-identical diagrams are different problems); across sources pictures are compared by
perceptual hash, confirmed on thumbnails, so a re-encoded or resized copy is the same picture,
since benchmarks such as MathVista and CV-Bench reuse other datasets' images.

A training problem showing the same picture as a val or test problem, whatever its question,
is an `image` copy. The arms leave out text copies by default (and image copies with
`arms.image_overlap`); the report counts both. Every flag names both problems' sources.
"""

import re
import unicodedata

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process

from schemas.config import ArmsConfig
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, write_table

CHUNK = 2048  # training rows compared per step: bounds the (CHUNK, n_eval) score matrix
CANDIDATE_BITS = 10  # perceptual hashes at most this many bits apart (of 64) may show the same picture ...
THUMB = 64  # ... and then do when their 64x64 greyscale thumbnails differ by at most
BLOCK_DIFF = 12.0  # this much (mean absolute difference, 0-255) in every 8x8 block: re-encoding and resizing
# blur a picture everywhere a little; another number or shape in a diagram changes one block a lot


def normalise(question: str, hint: str | None, choices: list[str] | None) -> str:
    text = " ".join([question or "", hint or "", *sorted(choices or [])])
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def texts_of(df: pl.DataFrame) -> list[str]:
    return [normalise(q, h, c) for q, h, c in zip(df["question"].to_list(), df["hint"].to_list(),
                                                  df["choices"].to_list(), strict=True)]


def hashes(df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit perceptual hashes, has one?) per row; sha-only rows (older data) fall back to no hash."""
    values = df["image_phash"].to_list() if "image_phash" in df.columns else [None] * df.height
    known = np.array([v is not None for v in values])
    return np.array([int(v, 16) if v else 0 for v in values], dtype=np.uint64), known


def picture_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Hamming distances of perceptual hashes."""
    return np.bitwise_count(a[:, None] ^ b[None, :])


class Pictures:
    """Whether two stored images show the same picture, from cached thumbnails (None: the image
    files are not at hand, so the perceptual hash alone decides)."""

    def __init__(self, image_path=None):
        self.image_path, self.thumbs = image_path, {}

    def thumb(self, sha: str) -> np.ndarray | None:
        if sha not in self.thumbs:
            from PIL import Image

            path = self.image_path(sha) if self.image_path else None
            self.thumbs[sha] = (np.asarray(Image.open(path).convert("L").resize((THUMB, THUMB), Image.Resampling.LANCZOS),
                                           dtype=np.float32) if path is not None and path.exists() else None)
        return self.thumbs[sha]

    def same(self, a: str, b: str, across_sources: bool) -> bool:
        if a == b:
            return True
        if not across_sources:
            return False
        ta, tb = self.thumb(a), self.thumb(b)
        if ta is None or tb is None:
            return True
        blocks = np.abs(ta - tb).reshape(THUMB // 8, 8, THUMB // 8, 8).mean(axis=(1, 3))  # (8, 8) block means
        return bool(blocks.max() <= BLOCK_DIFF)


def contamination(problems: pl.DataFrame, near_match: float = ArmsConfig().near_match, image_path=None) -> pl.DataFrame:
    """One row per flagged training problem and kind: its closest val/test match and the score
    (rapidfuzz ratio of the texts; 100 = the same text)."""
    if "source" not in problems.columns:
        problems = problems.with_columns(pl.lit("").alias("source"))
    train = problems.filter(pl.col("split") == "train")
    held = problems.filter(pl.col("split").is_in(["val", "test"]))
    if train.is_empty() or held.is_empty():
        return pl.DataFrame(schema=SCHEMAS["contamination"])
    train_texts, held_texts = texts_of(train), texts_of(held)
    (t_hash, t_known), (h_hash, h_known) = hashes(train), hashes(held)
    t_sha, h_sha = train["image_sha"].to_list(), held["image_sha"].to_list()
    ids = {sha: n for n, sha in enumerate(set(t_sha) | set(h_sha)) if sha is not None}
    t_id, h_id = (np.array([ids.get(x, -1) for x in shas]) for shas in (t_sha, h_sha))  # -1: no image
    t_src, h_src = np.array(train["source"].to_list()), np.array(held["source"].to_list())
    pictures, rows = Pictures(image_path), []
    for start in range(0, len(train_texts), CHUNK):
        part = slice(start, min(start + CHUNK, len(train_texts)))
        scores = process.cdist(train_texts[part], held_texts, scorer=fuzz.ratio, score_cutoff=near_match,
                               dtype=np.uint8, workers=-1)  # (chunk, n_held), 0 = below the cutoff
        across = t_src[part, None] != h_src[None, :]  # (chunk, n_held)
        same_bytes = (t_id[part, None] == h_id[None, :]) & (t_id[part, None] >= 0)
        near = same_bytes | ((picture_distance(t_hash[part], h_hash) <= CANDIDATE_BITS) & across
                             & t_known[part, None] & h_known[None, :])  # candidates for the same picture
        for i, j in zip(*np.nonzero(scores), strict=True):  # text copies, unless the pictures differ
            t, j = start + int(i), int(j)
            no_picture = t_id[t] < 0 or h_id[j] < 0
            if no_picture or (near[i, j] and pictures.same(t_sha[t], h_sha[j], bool(across[i, j]))):
                exact = train_texts[t] == held_texts[j]
                rows.append(row(train, held, t, j, "text", 100.0 if exact else float(scores[i, j])))
        for i, j in zip(*np.nonzero(near), strict=True):  # the same picture, any question
            t, j = start + int(i), int(j)
            if pictures.same(t_sha[t], h_sha[j], bool(across[i, j])):
                rows.append(row(train, held, t, j, "image", float(fuzz.ratio(train_texts[t], held_texts[j]))))
    df = pl.DataFrame(rows, schema=SCHEMAS["contamination"])
    return (df.sort("score", descending=True).unique(["problem_id", "kind"], keep="first")
            .sort("problem_id", "kind"))


def row(train: pl.DataFrame, held: pl.DataFrame, t: int, j: int, kind: str, score: float) -> dict:
    return dict(problem_id=train["problem_id"][t], match_id=held["problem_id"][j], match_split=held["split"][j],
                score=score, kind=kind, source=train["source"][t], match_source=held["source"][j])


def left_out(cfg, flags: pl.DataFrame) -> pl.Series:
    """The training problems the arms leave out: text copies (with arms.decontaminate), and
    problems showing a val / test picture (with arms.image_overlap)."""
    kinds = (["text"] if cfg.arms.decontaminate else []) + (["image"] if cfg.arms.image_overlap else [])
    return flags.filter(pl.col("kind").is_in(kinds))["problem_id"].unique()


def run_decontam(cfg, data: DataDir, problems: pl.DataFrame) -> pl.DataFrame:
    """Flags training problems that copy a val / test problem; writes contamination/flags.parquet."""
    flags = contamination(problems, cfg.arms.near_match, data.image)
    write_table(flags, data.table("contamination") / "flags.parquet", "contamination")
    return flags
