"""caption: one caption per image problem and captioner, so text-only teachers can solve it.

Captioners: `dataset` (the caption shipped with the problem) and `none`.
"""

import polars as pl


def dataset_captions(problems: pl.DataFrame) -> pl.DataFrame:
    """The shipped captions of problems that have an image (or a caption standing in for one)."""
    return (
        problems.filter(pl.col("caption").is_not_null() & (pl.col("caption").str.strip_chars() != ""))
        .select("problem_id", "image_sha", pl.lit("dataset").alias("captioner"), "caption")
    )


CAPTIONERS = {
    "dataset": dataset_captions,
    "none": lambda problems: dataset_captions(problems).clear(),
}


def caption_shard(captioner: str, problems: pl.DataFrame) -> pl.DataFrame:
    if captioner not in CAPTIONERS:
        raise ValueError(f"unknown captioner {captioner!r}; choose one of {sorted(CAPTIONERS)}")
    return CAPTIONERS[captioner](problems)
