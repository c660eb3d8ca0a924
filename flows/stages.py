"""One Prefect flow per stage. Each takes the whole `FactoryConfig` (a form in the Prefect UI), or
a YAML file holding one, and runs one Prefect task per shard (data stages) or per student
(train, evaluate)."""

from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.clusters import log_outcome, per_shard, prefect_secrets
from flows.ui import publish_report, stage_progress
from reports.stages import run_report
from schemas.config import FactoryConfig
from schemas.errors import InputError
from schemas.paths import DataDir
from students import stages as student_stages
from students.backends import arms_teacher
from students.bases import one_base
from students.deployment import chosen, run_deploy
from students.references import run_reference
from students.runner import run_audit
from tasks.arms import run_arms
from tasks.caption import REMOTE
from tasks.export import run_export
from tasks.import_traces import ImportSettings, run_import
from tasks.ingest import ingest
from tasks.result import ShardResult

DEFAULT = FactoryConfig()  # what the Prefect UI form starts from
CONFIG_DOC = """
    Args:
        config_file: A YAML file holding a FactoryConfig (as in configs/), relative to the directory
            the flow runs in. When set, it is used and the config below is ignored.
        config: The factory configuration, used when no config_file is given.
"""


def documented(fn):
    """Adds the config parameters' descriptions (the UI form shows them) to a stage flow's docstring."""
    fn.__doc__ = (fn.__doc__ or "").rstrip() + "\n" + CONFIG_DOC
    return fn


def configured(config: FactoryConfig, config_file: str | None) -> FactoryConfig:
    """The config a run uses: the file's when one is named (the deployments' named configs)."""
    prefect_secrets()
    if not config_file:
        return config
    path = Path(config_file)
    if not path.is_file():
        raise InputError(f"config_file {config_file!r} is not a file (looked in {Path.cwd()})")
    loaded = FactoryConfig.from_yaml(path)
    get_run_logger().info("config from %s; data directory %s", path.resolve(), Path(loaded.data_dir).resolve())
    return loaded


def data_of(config: FactoryConfig) -> DataDir:
    return DataDir(config.data_dir)


def log_spend(stage: str, total: ShardResult) -> dict:
    spent = "unknown (no price for this model: add it under prices:)" if total.cost_usd is None else \
        f"${total.cost_usd:.4f}"
    get_run_logger().info("%s: %d requests served from the cache, %d new, %d failed; new tokens in %d, out %d; "
                          "spent %s", stage, total.cached, total.new, total.failed, total.tokens_in,
                          total.tokens_out, spent)
    return total.spend()


@flow(name="ingest")
@documented
def ingest_flow(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """Reads the configured source into problems (and rejects)."""
    config = configured(config, config_file)
    result = task(ingest, cache_policy=NO_CACHE)(config.ingest, data_of(config))
    get_run_logger().info("ingest: %d problems in %d shards; rejected %s", result.problems,
                          len(result.shards), dict(result.rejects) or "none")
    if result.removed:
        get_run_logger().warning("ingest: fewer shards than before: removed %d files of the shards no longer "
                                 "ingested (their answers stay in the teacher cache): %s", len(result.removed),
                                 ", ".join(result.removed[:10]) + (" ..." if len(result.removed) > 10 else ""))
    return {"problems": result.problems, "rejects": dict(result.rejects), "shards": result.shards,
            "removed": result.removed}


@flow(name="caption")
@documented
def caption_flow(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """One caption per image problem, from the dataset or a vision model."""
    config = configured(config, config_file)
    todo = data_of(config).shards()
    with stage_progress("caption"):
        total = per_shard("caption", config, todo)
    if config.caption.captioner not in REMOTE:
        return {"captioner": config.caption.captioner}
    spend = log_spend("caption", total)
    log_outcome("caption", config, total)
    return spend


@flow(name="sample")
@documented
def sample_flow(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """k reasoning paths per problem and prompt variant from the teacher, through the cache."""
    config = configured(config, config_file)
    todo = data_of(config).shards()  # before a teacher is started
    with stage_progress("sample"):
        total = per_shard("sample", config, todo)
    spend = log_spend("sample", total)
    log_outcome("sample", config, total)  # nothing usable: an error
    return spend | {"rejects": dict(total.rejects)}


@flow(name="verify")
def verify_flow(config_file: str | None = None, config: FactoryConfig = DEFAULT, audit: bool = False) -> dict:
    """Extracts and grades every sample's final answer (a model only with verify.judge).

    Args:
        config_file: A YAML file holding a FactoryConfig (as in configs/), relative to the directory
            the flow runs in. When set, it is used and the config below is ignored.
        config: The factory configuration, used when no config_file is given.
        audit: Also grade every sample with each grader (rules, mathruler, math-verify, the judge) and
            write where they disagree to reports/verify-audit/audit.md.
    """
    config = configured(config, config_file)
    files = data_of(config).sample_files()
    total = per_shard("verify", config, files)
    result = {"verdicts": total.rows, "unchanged_files": total.skipped}
    if audit:  # the judge (verify.judge) is opened in the task
        result["audit"] = task(run_audit, cache_policy=NO_CACHE)(config, data_of(config))
    get_run_logger().info("verify: %d verdicts in %d samples files (%s)%s", total.rows, len(files),
                          skips(total.skipped), f"; audit: {result['audit']['report']}" if audit else "")
    return result


def skips(unchanged: int) -> str:
    return f"{unchanged} unchanged since the last run, skipped" if unchanged else "all computed"


@flow(name="select")
@documented
def select_flow(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """Keeps the correct trace(s) the policy picks; pass@1 and pass@k per problem."""
    config = configured(config, config_file)
    files = data_of(config).sample_files()
    total = per_shard("select", config, files)
    get_run_logger().info("select: %d rows selected from %d samples files (%s)", total.rows, len(files),
                          skips(total.skipped))
    return {"selected": total.rows, "unchanged_files": total.skipped}


@flow(name="arms")
@documented
def arms_flow(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """The student training sets, decontaminated against val and test."""
    config = configured(config, config_file)
    result = task(run_arms, cache_policy=NO_CACHE)(config, data_of(config), arms_teacher(config))
    logger = get_run_logger()
    logger.info("arms from teacher %s: %s; training problems copying a val/test question: %d, showing a val/test "
                "picture: %d (%d left out)%s", result["teacher"], result["rows"], result["contaminated"],
                result["image_overlap"], result["left_out"],
                "; inputs unchanged since the last run, skipped" if result["unchanged"] else "")
    for arm, reason in result["skipped"].items():
        logger.warning("arm %s skipped: %s", arm, reason)
    return result


@flow(name="export")
@documented
def export_flow(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """Every arm as a datasets dataset, trl parquet and LLaMA-Factory ShareGPT, with a dataset card."""
    config = configured(config, config_file)
    counts = task(run_export, cache_policy=NO_CACHE)(config, data_of(config), arms_teacher(config))
    get_run_logger().info("export: %s under %s", counts, data_of(config).table("exports"))
    return counts


@flow(name="import-traces")
def import_traces_flow(file: str, teacher: str, source: str, variant: Literal["plain", "lecture"] = "plain",
                       model: str | None = None, id_column: str | None = None, response_column: str | None = None,
                       reasoning_column: str | None = None, config_file: str | None = None,
                       config: FactoryConfig = DEFAULT) -> dict:
    """Existing traces (jsonl / json / parquet) stored as samples of a named teacher; run verify and select after.

    Args:
        file: The traces: a jsonl, json or parquet file, relative to the directory the flow runs in.
        teacher: The name the samples are stored under (samples/TEACHER/); arms.teacher can name it.
        source: The ingested source whose problem ids the file uses, e.g. scienceqa.
        variant: The prompt variant of rows without a `variant` column.
        model: The model name of rows without a `model` column; also used for pricing.
        id_column: The problem id column, when not one of the usual names.
        response_column: The response column, when not one of the usual names.
        reasoning_column: The reasoning column, when not one of the usual names.
        config_file: A YAML file holding a FactoryConfig, relative to the directory the flow runs in.
            When set, it is used and the config below is ignored.
        config: The factory configuration (its data_dir is where the samples go).
    """
    config = configured(config, config_file)
    result = task(run_import, cache_policy=NO_CACHE)(
        config, data_of(config), file,
        ImportSettings(teacher, source, variant, model, id_column, response_column, reasoning_column))
    get_run_logger().info("import-traces: %d samples of %d problems as teacher %r; rejected %s", result.samples,
                          result.problems, teacher, dict(result.rejects) or "none")
    return {"samples": result.samples, "problems": result.problems, "rejects": dict(result.rejects),
            "files": result.files}


@flow(name="train")
@documented
def train_flow(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """One adapter per arm and method (one task each, one after another: each uses every core)."""
    config = configured(config, config_file)
    run = task(student_stages.run_train, cache_policy=NO_CACHE, task_run_name="train-{arm}-{method}-{seed}")
    metas, logger = {}, get_run_logger()
    with stage_progress("train"), one_base():  # the arms train on one loaded base model
        for student in student_stages.trained(config):
            meta = run(config, data_of(config), student.arm, student.method, student.seed)
            metas[student.name] = meta.get("status") + (" (reused)" if meta.get("reused") else "")
            if meta.get("status") == "skipped":
                logger.warning("%s not trained: %s", student.name, meta.get("reason"))
            elif meta.get("too_long"):
                logger.warning("%s: %d of %d examples longer than train.max_length (%d tokens) were left out",
                               student.name, meta["too_long"], meta["train_examples"] + meta["too_long"],
                               config.train.max_length)
    logger.info("train: %s", metas)
    return metas


@flow(name="evaluate")
@documented
def evaluate_flow(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """Greedy answers of every trained student and the untuned base on the evaluation split, graded."""
    config = configured(config, config_file)
    shared = task(student_stages.run_evaluations, cache_policy=NO_CACHE, task_run_name="evaluate-students")
    each = task(student_stages.run_evaluate, cache_policy=NO_CACHE, task_run_name="evaluate-{student}")
    reference = task(run_reference, cache_policy=NO_CACHE, task_run_name="reference-{ref.name}")
    student_stages.require_trained(config, data_of(config))  # before any model is loaded
    names = student_stages.students(config)
    with stage_progress("evaluate"):  # evaluate.shared: one task, the LoRA students over one loaded base
        results = shared(config, data_of(config), names) if config.evaluate.shared else \
            {s: each(config, data_of(config), s) for s in names}
        results |= {f"reference:{r.name}": reference(config, data_of(config), r) for r in config.reference}
    return results


@flow(name="deploy")
def deploy_flow(config_file: str | None = None, config: FactoryConfig = DEFAULT,
                students: list[str] | None = None) -> dict:
    """Each student merged, quantized (int8, int4, GGUF) and measured on this CPU (one task per student);
    off in `factory` unless deploy.students is set.

    Args:
        config_file: A YAML file holding a FactoryConfig (as in configs/), relative to the directory
            the flow runs in. When set, it is used and the config below is ignored.
        config: The factory configuration, used when no config_file is given.
        students: The students to deploy (wins over deploy.students); `best` and `base` as there.
    """
    config = configured(config, config_file)
    names = students or config.deploy.students
    if not names:
        return {"status": "off (deploy.students is not set)"}
    run = task(run_deploy, cache_policy=NO_CACHE, task_run_name="deploy-{student}")
    data = data_of(config)
    results = {}
    with stage_progress("deploy"):
        for student in chosen(config, data, names):
            results[student] = {r["format"]: r["status"] for r in run(config, data, student)}
    get_run_logger().info("deploy: %s; figures in %s", results, data.deploy(config.run) / "measurements.json")
    return results


@flow(name="report")
@documented
def report_flow(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> str:
    """report.md and summary.json of the run, also as artifacts of this flow run."""
    config = configured(config, config_file)
    path = task(run_report, cache_policy=NO_CACHE)(config, data_of(config))
    publish_report(config.run, path, Path(config.data_dir))
    get_run_logger().info("report: %s", path.resolve())
    return str(path)


STAGES = {
    "ingest": ingest_flow, "caption": caption_flow, "sample": sample_flow, "verify": verify_flow,
    "select": select_flow, "arms": arms_flow, "export": export_flow, "train": train_flow, "evaluate": evaluate_flow,
    "deploy": deploy_flow, "report": report_flow,
}
