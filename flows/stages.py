"""One Prefect flow per stage. Each takes the whole `FactoryConfig` (a form in the Prefect UI)
and runs one Prefect task per shard (data stages) or per student (train, evaluate)."""

from contextlib import nullcontext
from typing import Literal

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE

from reports.stages import run_report
from schemas.config import FactoryConfig
from schemas.paths import DataDir
from students import stages as student_stages
from tasks import stages
from tasks.caption import REMOTE
from tasks.ingest import ingest
from tasks.teachers import secrets
from teacher_cache import CacheStats

DEFAULT = FactoryConfig()  # what the Prefect UI form starts from
secrets.secret_loader = lambda name: Secret.load(name).get()  # api_key_secret: a Prefect Secret block


def data_of(config: FactoryConfig) -> DataDir:
    return DataDir(config.data_dir)


def per_shard(fn, config: FactoryConfig, items: list[str], *shared) -> list:
    """Runs `fn(config, data, item, *shared)` as one Prefect task per item, concurrently."""
    runner = task(fn, cache_policy=NO_CACHE, name=fn.__name__.removeprefix("run_"))
    futures = runner.map(unmapped(config), unmapped(data_of(config)), items, *(unmapped(x) for x in shared))
    return [f.result() for f in futures]


def log_spend(stage: str, total: CacheStats, priced: bool) -> dict:
    spent = f"${total.cost_usd:.4f}" if priced else "unknown (no price for this model: add it under prices:)"
    get_run_logger().info("%s: %d requests served from the cache, %d new, %d failed; new tokens in %d, out %d; "
                          "spent %s", stage, total.hits, total.new, total.failed, total.tokens_in, total.tokens_out,
                          spent)
    return {"cached": total.hits, "new": total.new, "failed": total.failed, "tokens_in": total.tokens_in,
            "tokens_out": total.tokens_out, "cost_usd": round(total.cost_usd, 6) if priced else None}


@flow(name="ingest")
def ingest_flow(config: FactoryConfig = DEFAULT) -> dict:
    result = task(ingest, cache_policy=NO_CACHE)(config.ingest, data_of(config))
    get_run_logger().info("ingest: %d problems in %d shards; rejected %s", result.problems,
                          len(result.shards), dict(result.rejects) or "none")
    return {"problems": result.problems, "rejects": dict(result.rejects), "shards": result.shards}


@flow(name="caption")
def caption_flow(config: FactoryConfig = DEFAULT) -> dict:
    data = data_of(config)
    remote = config.caption.captioner in REMOTE
    with stages.opened(config.caption, config, data) if remote else nullcontext() as captioner:
        total = sum(per_shard(stages.run_caption, config, stages.shards(data), captioner), CacheStats())
        priced = captioner is None or captioner.price is not None
    return log_spend("caption", total, priced) if remote else {"captioner": config.caption.captioner}


@flow(name="sample")
def sample_flow(config: FactoryConfig = DEFAULT) -> dict:
    data = data_of(config)
    with stages.opened(config.sample, config, data) as teacher:
        total = sum(per_shard(stages.run_sample, config, stages.shards(data), teacher), CacheStats())
    return log_spend("sample", total, teacher.price is not None)


@flow(name="verify")
def verify_flow(config: FactoryConfig = DEFAULT) -> dict:
    return {"verdicts": sum(per_shard(stages.run_verify, config, stages.sample_files(data_of(config))))}


@flow(name="select")
def select_flow(config: FactoryConfig = DEFAULT) -> dict:
    return {"selected": sum(per_shard(stages.run_select, config, stages.sample_files(data_of(config))))}


@flow(name="arms")
def arms_flow(config: FactoryConfig = DEFAULT) -> dict:
    result = task(stages.run_arms, cache_policy=NO_CACHE)(config, data_of(config))
    get_run_logger().info("arms from teacher %s: %s; %d training problems copy a val/test problem (%d left out)",
                          result["teacher"], result["rows"], result["contaminated"], result["left_out"])
    return result


@flow(name="export")
def export_flow(config: FactoryConfig = DEFAULT) -> dict:
    counts = task(stages.run_export, cache_policy=NO_CACHE)(config, data_of(config))
    get_run_logger().info("export: %s under %s", counts, data_of(config).table("exports"))
    return counts


@flow(name="import-traces")
def import_traces_flow(file: str, teacher: str, source: str, variant: Literal["plain", "lecture"] = "plain",
                       model: str | None = None, id_column: str | None = None, response_column: str | None = None,
                       reasoning_column: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """Existing traces (jsonl / json / parquet) as samples of `teacher`; then verify and select."""
    result = task(stages.run_import, cache_policy=NO_CACHE)(
        config, data_of(config), file, teacher, source, variant, model, id_column, response_column, reasoning_column)
    get_run_logger().info("import-traces: %d samples of %d problems as teacher %r; rejected %s", result.samples,
                          result.problems, teacher, dict(result.rejects) or "none")
    return {"samples": result.samples, "problems": result.problems, "rejects": dict(result.rejects),
            "files": result.files}


@flow(name="train")
def train_flow(config: FactoryConfig = DEFAULT) -> dict:
    """One task per (arm, method), one after another: each already uses every core."""
    run = task(student_stages.run_train, cache_policy=NO_CACHE, task_run_name="train-{arm}-{method}")
    metas = {}
    for arm in config.arms.arms:
        for method in config.train.methods:
            meta = run(config, data_of(config), arm, method)
            metas[student_stages.student_name(arm, method)] = meta.get("status") + (" (reused)" if meta.get("reused") else "")
    get_run_logger().info("train: %s", metas)
    return metas


@flow(name="evaluate")
def evaluate_flow(config: FactoryConfig = DEFAULT) -> dict:
    run = task(student_stages.run_evaluate, cache_policy=NO_CACHE, task_run_name="evaluate-{student}")
    results = {s: run(config, data_of(config), s) for s in student_stages.students(config)}
    return {s: r.get("accuracy", r["status"]) for s, r in results.items()}


@flow(name="report")
def report_flow(config: FactoryConfig = DEFAULT) -> str:
    path = task(run_report, cache_policy=NO_CACHE)(config, data_of(config))
    key = "report-" + "".join(c if c.isalnum() else "-" for c in config.run.lower())
    create_markdown_artifact(path.read_text(), key=key, description=f"distillery report for run {config.run}")
    get_run_logger().info("report: %s", path)
    return str(path)


STAGES = {
    "ingest": ingest_flow, "caption": caption_flow, "sample": sample_flow, "verify": verify_flow,
    "select": select_flow, "arms": arms_flow, "export": export_flow, "train": train_flow, "evaluate": evaluate_flow,
    "report": report_flow,
}
