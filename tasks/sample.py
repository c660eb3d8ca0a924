"""sample: k reasoning paths per problem x prompt variant from one teacher, through the cache."""

import hashlib
import re

import polars as pl

from schemas.config import SampleConfig
from schemas.tables import SCHEMAS
from tasks.prompts import user_message
from tasks.teachers import ImageRef, Request, SamplingParams
from tasks.teachers.prices import cost_usd
from teacher_cache import CachedTeacher, CacheStats


def teacher_dir(identity: str) -> str:
    """A directory name for a teacher identity such as `local/embedded`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", identity).strip("_")


def sample_id(problem_id: str, request_key: str, index: int) -> str:
    """Unique per row: two problems worded alike share a request (asked once) but not a sample."""
    return hashlib.sha256(f"{problem_id}:{request_key}:{index}".encode()).hexdigest()[:20]


def build_requests(cfg: SampleConfig, problems: pl.DataFrame, captions: dict[str, str],
                   image_path=None) -> list[tuple[dict, str, Request]]:
    """(problem, variant, request) for every problem in cfg.splits x variant x sample index.

    With `cfg.images`, a problem's image goes with its request (`image_path(sha)` finds it).
    """
    # Remote teachers end their answers themselves; only a local model is stopped at its answer.
    params = SamplingParams(cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed,
                            stop_at_answer=cfg.stop_at_answer and cfg.teacher == "local")
    out = []
    for p in problems.filter(pl.col("split").is_in(cfg.splits)).iter_rows(named=True):
        images = (ImageRef(p["image_sha"], image_path(p["image_sha"])),) if cfg.images and p["image_sha"] else ()
        for variant in cfg.variants:
            messages = (("user", user_message(p, captions.get(p["problem_id"]), variant)),)
            out += [(p, variant, Request(messages, params, i, images)) for i in range(cfg.k)]
    return out


def sample_shard(cfg: SampleConfig, problems: pl.DataFrame, captions: dict[str, str],
                 teacher: CachedTeacher, desc: str = "sampling", image_path=None) -> tuple[pl.DataFrame, CacheStats]:
    """The shard's samples (from the cache where present) and what asking for the rest cost."""
    items = build_requests(cfg, problems, captions, image_path)
    completions, stats = teacher.complete([r for _, _, r in items], desc=desc)
    rows = []
    for (p, variant, req), c in zip(items, completions, strict=True):
        if c is None:  # failed: its error is in the cache's errors table, and a re-run retries it
            continue
        key = req.key(teacher.identity)
        rows.append(dict(
            sample_id=sample_id(p["problem_id"], key, req.sample_index), problem_id=p["problem_id"], teacher=teacher.identity,
            model=cfg.model, variant=variant, sample_index=req.sample_index, request_key=key,
            prompt=req.messages[-1][1], reasoning=c.reasoning, content=c.content, finish_reason=c.finish_reason,
            prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens, latency_s=c.latency_s,
            cost_usd=cost_usd(teacher.price, c.prompt_tokens, c.completion_tokens),
        ))
    return pl.DataFrame(rows, schema=SCHEMAS["samples"]), stats
