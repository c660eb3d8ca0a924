"""The shard stages' Prefect tasks: one per shard (or samples file), in threads of the flow's process or
on a dask / ray cluster, each opening what it uses in the process that runs it."""

from prefect import flow, get_run_logger, task, unmapped
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from flows.cli import quiet_explained_tracebacks
from flows.clusters import cluster_runner
from schemas.config import FactoryConfig
from schemas.errors import INTERRUPT, interrupted
from schemas.paths import DataDir
from tasks.backends import close_backends
from tasks.result import ShardResult
from tasks.runner import outcome, run_shard
from tasks.teachers import secrets


def prefect_secrets() -> None:
    """`api_key_secret` / `export.token_secret` name Prefect Secret blocks: this process (the flow's, or a
    worker's running a shard task) loads them from the Prefect API itself when it opens a backend, so a
    key's value never crosses a task boundary (no task parameter, environment or log line holds it)."""
    secrets.secret_loader = lambda name: Secret.load(name).get()


def per_shard(stage: str, config: FactoryConfig, items: list[str]) -> ShardResult:
    """Runs the shard stage `stage` (tasks/runner.py) as one Prefect task per item, concurrently: in
    threads of this process, or (runner dask / ray) in a subflow whose task runner is that cluster;
    returns the shards' results added up, after logging what the total means (`outcome`).
    Only the stage's name, the config and the item cross to a task; it opens what it uses itself."""
    shard_task = task(run_shard_here, cache_policy=NO_CACHE, name=stage, task_run_name=f"{stage}-{{item}}")
    if INTERRUPT.is_set():  # Ctrl-C during an earlier stage of `run`: no further stage starts
        raise interrupted()

    def mapped() -> list:
        futures = shard_task.map(unmapped(stage), unmapped(config), unmapped(DataDir(config.data_dir)), items)
        try:
            futures.wait()  # every shard ends before the backends close (one failing leaves the others running)
        finally:
            close_everywhere(config)
        return results_of(futures)

    results = mapped() if config.runner.kind == "threads" else \
        flow(mapped, name=f"{stage}-shards", task_runner=cluster_runner(config.runner))()
    total = sum(results, ShardResult())
    for warning in outcome(stage, config, total):  # nothing usable: an error
        get_run_logger().warning("%s: %s", stage, warning)
    return total


def close_everywhere(config: FactoryConfig) -> None:
    """Closes the backends the stage's shard tasks opened: this process's (threads), every dask worker's;
    a ray worker closes its own at each task's end."""
    if config.runner.kind == "threads":
        close_backends()
    elif config.runner.kind == "dask":
        FlowRunContext.get().task_runner.client.run(close_backends, on_error="return")  # a lost worker: nothing to close


def run_shard_here(name: str, cfg: FactoryConfig, data: DataDir, item: str) -> ShardResult:
    """`run_shard` in the process that runs the task: a dask or ray worker's console, like the CLI's,
    shows an error the CLI explains in one line without its traceback (Prefect sets its handlers up
    anew in a worker)."""
    prefect_secrets()
    if cfg.runner.kind != "threads":
        quiet_explained_tracebacks()
    try:
        return run_shard(name, cfg, data, item)
    finally:
        if cfg.runner.kind == "ray":  # no call reaches every ray worker at the stage's end
            close_backends()


def results_of(futures) -> list:
    """Every shard's result; when shards failed, the fullest of their errors (shards failing for one
    cause, a full disk or Ctrl-C, say most in the one that met it first)."""
    results, errors = [], []
    for f in futures:
        try:
            results.append(f.result())
        except Exception as e:  # noqa: BLE001  raised below, after the other shards'
            errors.append(e)
    if errors:
        raise max(errors, key=lambda e: len(str(e)))
    return results
