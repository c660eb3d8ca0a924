"""caption: one caption per image problem and captioner, so text-only teachers can solve it.

Captioners: `dataset` (the caption shipped with the problem), `none`, and `gemini` / `openai`
(a vision model behind the teacher backends, the request engine and the cache; a caption is
cached by image hash, captioner and prompt, so an image shared by many problems is paid once).
"""

import polars as pl

from schemas.config import CaptionConfig, FactoryConfig
from schemas.errors import StageFailed
from schemas.tables import SCHEMAS
from tasks.result import ShardResult
from tasks.teachers import ImageRef, Request, SamplingParams
from teacher_cache import CachedTeacher, CacheStats
from teacher_cache.prices import cost_usd

REMOTE = ("gemini", "openai")


def dataset_captions(problems: pl.DataFrame) -> pl.DataFrame:
    """The shipped captions of problems that have an image (or a caption standing in for one)."""
    return (
        problems.filter(pl.col("caption").is_not_null() & (pl.col("caption").str.strip_chars() != ""))
        .select("problem_id", "image_sha", pl.lit("dataset").alias("captioner"), "caption",
                pl.lit(0).alias("prompt_tokens"), pl.lit(0).alias("completion_tokens"), pl.lit(0.0).alias("cost_usd"))
    )


def model_captions(cfg: CaptionConfig, problems: pl.DataFrame, captioner: CachedTeacher, image_path,
                   desc: str) -> tuple[pl.DataFrame, CacheStats]:
    """Captions from a vision model, one request per distinct image (greedy, so one is enough)."""
    with_image = problems.filter(pl.col("image_sha").is_not_null())
    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=cfg.max_new_tokens)
    requests = [Request((("user", cfg.prompt),), params, 0, (ImageRef(sha, image_path(sha)),))
                for sha in with_image["image_sha"]]
    answers, stats = captioner.complete(requests, desc=desc)
    rows = [dict(problem_id=pid, image_sha=sha, captioner=cfg.captioner, caption=a.content,
                 prompt_tokens=a.prompt_tokens, completion_tokens=a.completion_tokens,
                 cost_usd=cost_usd(captioner.price, a.prompt_tokens, a.completion_tokens))
            for pid, sha, a in zip(with_image["problem_id"], with_image["image_sha"], answers, strict=True)
            if a is not None and a.content]  # a failure is in the cache's errors table; a re-run retries it
    return pl.DataFrame(rows, schema=SCHEMAS["captions"]), stats


def caption_shard(cfg: CaptionConfig, problems: pl.DataFrame, captioner: CachedTeacher | None = None,
                  image_path=None, desc: str = "captioning") -> tuple[pl.DataFrame, CacheStats]:
    if cfg.captioner == "dataset":
        return dataset_captions(problems), CacheStats()
    if cfg.captioner == "none":
        return dataset_captions(problems).clear(), CacheStats()
    if captioner is None:
        raise ValueError(f"captioner {cfg.captioner!r} needs an opened backend (students.backends.opened)")
    return model_captions(cfg, problems, captioner, image_path, desc)


def caption_outcome(cfg: FactoryConfig, total: ShardResult, captioner: str) -> list[str]:
    """A warning when some requests failed; an error when every one did and nothing was captioned."""
    if total.failed and not total.new and not total.cached:
        raise StageFailed(f"every request to captioner {captioner} failed ({total.failed}): "
                          f"{total.common_errors()}")
    return [f"{total.failed} requests failed (a re-run retries them): {total.common_errors()}"] if total.failed else []
