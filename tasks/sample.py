"""sample: k reasoning paths per problem x prompt variant from one teacher, through the cache."""

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from schemas.config import FactoryConfig, SampleConfig
from schemas.errors import StageFailed
from schemas.tables import SCHEMAS
from tasks.prompts import teacher_message
from tasks.result import ShardResult
from tasks.teachers import ImageRef, Request, SamplingParams
from teacher_cache import CachedTeacher, CacheStats
from teacher_cache.prices import cost_usd


def teacher_dir(identity: str) -> str:
    """A directory name for a teacher identity such as `local/embedded`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", identity).strip("_")


def sample_id(problem_id: str, request_key: str, index: int) -> str:
    """Unique per row: two problems worded alike share a request (asked once) but not a sample."""
    return hashlib.sha256(f"{problem_id}:{request_key}:{index}".encode()).hexdigest()[:20]


PROMPT_FIELDS = ["problem_id", "source", "question", "choices", "hint", "lecture", "caption", "image_sha"]
CHARS_PER_TOKEN = 4  # prompt size estimate before sending (no tokenizer for a remote teacher)


def build_requests(cfg: SampleConfig, problems: pl.DataFrame, captions: dict[str, str],
                   image_path=None, uncaptioned: bool = False) -> tuple[list[tuple[dict, str, Request]], list[dict]]:
    """(problem, variant, request) for every problem in cfg.splits x variant x sample index, and
    the problems that cannot be sent, as `rejects` rows: an image problem whose image the teacher
    would not see (no caption and no `sample.images`), a prompt over `sample.max_prompt_tokens`.

    With `cfg.images`, a problem's image goes with its request (`image_path(sha)` finds it).
    `uncaptioned`: image problems go without a caption too (the `none` captioner: chosen, not forgotten).
    """
    # Remote teachers end their answers themselves; only a local model is stopped at its answer.
    params = SamplingParams(cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed,
                            stop_at_answer=cfg.stop_at_answer and cfg.teacher in ("local", "student"))
    out, rejects = [], []
    wanted = problems.filter(pl.col("split").is_in(cfg.splits)).select(PROMPT_FIELDS)  # rows to dicts is the cost
    for p in wanted.iter_rows(named=True):
        caption = captions.get(p["problem_id"])
        sends_image = cfg.images and p["image_sha"]
        if (p["image_sha"] or p.get("caption")) and not caption and not sends_image and not uncaptioned:
            rejects.append(reject(p, "no_caption", "an image problem with no caption: run `distillery caption` "
                                  "first (or set sample.images for a vision teacher)"))
            continue
        images = (ImageRef(p["image_sha"], image_path(p["image_sha"])),) if sends_image else ()
        for variant in cfg.variants:
            messages = (("user", teacher_message(p, caption, variant, cfg.think_prompt)),)
            size = sum(len(c) for _, c in messages) // CHARS_PER_TOKEN
            if size > cfg.max_prompt_tokens:
                rejects.append(reject(p, "prompt_too_long", f"variant {variant}: about {size} tokens, over "
                                      f"sample.max_prompt_tokens={cfg.max_prompt_tokens}"))
                continue
            out += [(p, variant, Request(messages, params, i, images)) for i in range(cfg.k)]
    return out, rejects


def reject(p: dict, reason: str, detail: str) -> dict:
    return dict(stage="sample", source=p["source"], source_id=p["problem_id"], reason=reason, detail=detail)


@dataclass
class SampleResult:
    samples: pl.DataFrame
    stats: CacheStats
    rejects: Counter = field(default_factory=Counter)  # reason -> problems (x variants) not sent
    requests: int = 0  # sent or served from the cache
    rejected: list[dict] = field(default_factory=list)  # the `rejects` rows


def sample_shard(cfg: SampleConfig, problems: pl.DataFrame, captions: dict[str, str],
                 teacher: CachedTeacher, desc: str = "sampling", image_path=None, uncaptioned: bool = False) -> SampleResult:
    """The shard's samples (from the cache where present), what asking for the rest cost, and
    the problems not sent (their `rejects` rows are in `rejected`)."""
    items, rejected = build_requests(cfg, problems, captions, image_path, uncaptioned)
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
    return SampleResult(pl.DataFrame(rows, schema=SCHEMAS["samples"]), stats,
                        Counter(r["reason"] for r in rejected), len(items), rejected)


def sample_outcome(cfg: FactoryConfig, total: ShardResult, teacher: str) -> list[str]:
    """Warnings about what was not sent or failed; a sample stage that produced nothing usable
    is an error naming the most common reasons."""
    rejects, warnings = total.rejects, []
    if rejects.get("no_caption"):
        warnings.append(f"{rejects['no_caption']} image problems have no caption and were not sent: run "
                        "`distillery caption` first (or set sample.images for a vision teacher)")
    if rejects.get("prompt_too_long"):
        warnings.append(f"{rejects['prompt_too_long']} prompts over sample.max_prompt_tokens="
                        f"{cfg.sample.max_prompt_tokens} were not sent")
    if total.requests == 0:
        why = ", ".join(f"{n} {reason}" for reason, n in rejects.most_common()) or \
            f"no problems in the splits {cfg.sample.splits}"
        raise StageFailed(f"nothing to ask teacher {teacher}: {why} (see rejects/sample-*)")
    if total.failed == total.requests:
        raise StageFailed(f"every request to teacher {teacher} failed ({total.failed}): {total.common_errors()}. "
                          "No answer was stored; fix this and run `distillery sample` again")
    if total.failed:
        warnings.append(f"{total.failed} of {total.requests} requests failed (a re-run retries them): "
                        f"{total.common_errors()}")
    return warnings
