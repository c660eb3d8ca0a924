"""Where the shard stages' Prefect tasks run: one task per shard (or samples file), in threads of the
flow's process or on a dask / ray cluster, each opening what it uses in the process that runs it.

The local dask / ray cluster that shard stages run on (`runner.kind: dask | ray` without an
address): `distillery run` starts one before its first shard stage and stops it after the last
(caption, sample, verify, select), so training gets the workers' memory back; a stage run alone, and
each stage of `distill` (whose rounds alternate sampling and training), starts its own. Starting one
costs seconds each time (here, on 2 busy cores: dask 6 s, ray 19 s), and its workers import the
project anew. With `runner.address` the user's own cluster is used and never started or stopped here."""

import asyncio
import uuid
from contextlib import contextmanager

from prefect import flow, get_run_logger, task, unmapped
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from flows.console import quiet_explained_tracebacks
from schemas.config import FactoryConfig, RunnerConfig
from schemas.errors import INTERRUPT, interrupted
from schemas.paths import DataDir
from students.backends import close_backends
from students.runner import outcome, run_shard
from tasks.result import ShardResult
from tasks.teachers import secrets

FIRST_SHARD_STAGE, LAST_SHARD_STAGE = "caption", "select"  # `run` holds its cluster from one to the other


def dask_kwargs(runner: RunnerConfig) -> dict:
    return {"n_workers": runner.workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None,
            "preload": ["flows.dask_worker"]}


def ray_kwargs(runner: RunnerConfig) -> dict:
    return {"num_cpus": runner.workers, "include_dashboard": False}


def cluster_runner(runner: RunnerConfig):
    """prefect-dask's or prefect-ray's task runner on `runner.address`, or on a local cluster of `workers`
    processes of its own (prefect-ray: on the ray instance this process has initialised, if any, which it
    leaves running)."""
    if runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=runner.address) if runner.address else DaskTaskRunner(
            cluster_kwargs=dask_kwargs(runner))
    from prefect_ray import RayTaskRunner

    return RayTaskRunner(address=runner.address) if runner.address else RayTaskRunner(init_kwargs=ray_kwargs(runner))


def announce(runner: RunnerConfig, address: str) -> None:
    get_run_logger().info("a local %s cluster of %d workers at %s runs this flow's shard stages", runner.kind,
                          runner.workers, address)


@contextmanager
def one_cluster(runner: RunnerConfig):
    """Within: a local cluster the shard stages share; yields the runner settings that reach it (dask: its
    scheduler's address; ray: the in-process instance prefect-ray finds). Stopped on the way out."""
    if runner.kind == "threads" or runner.address:
        yield runner
        return
    if runner.kind == "dask":
        from distributed import LocalCluster

        with LocalCluster(**dask_kwargs(runner)) as cluster:
            announce(runner, cluster.scheduler_address)
            yield runner.model_copy(update={"address": cluster.scheduler_address})
        return
    import ray

    if ray.is_initialized():  # the caller's own instance: used, not stopped
        yield runner
        return
    context = ray.init(**ray_kwargs(runner))
    announce(runner, context.address_info.get("address", "local"))
    try:
        yield runner
    finally:
        ray.shutdown()


def prefect_secrets() -> None:
    """`api_key_secret` / `export.token_secret` name Prefect Secret blocks: this process (the flow's, or a
    worker's running a shard task) loads them from the Prefect API itself when it opens a backend, so a
    key's value never crosses a task boundary (no task parameter, environment or log line holds it)."""
    secrets.secret_loader = lambda name: Secret.load(name).get()


def per_shard(stage: str, config: FactoryConfig, items: list[str]) -> ShardResult:
    """Runs the shard stage `stage` (students/runner.py) as one Prefect task per item, concurrently: in
    threads of this process, or (runner dask / ray) in a subflow whose task runner is that cluster;
    returns the shards' results added up (`log_outcome` says what they mean). Only the stage's name, the
    config, the item and the scope of the stage's backends cross to a task; it opens what it uses itself."""
    shard_task = task(run_shard_here, cache_policy=NO_CACHE, name=stage, task_run_name=f"{stage}-{{item}}")
    if INTERRUPT.is_set():  # Ctrl-C during an earlier stage of `run`: no further stage starts
        raise interrupted()

    scope = f"{stage}-{uuid.uuid4().hex}"  # this stage of this flow run: its backends, on any worker

    def mapped() -> list:
        futures = shard_task.map(unmapped(stage), unmapped(config), unmapped(DataDir(config.data_dir)), items,
                                 unmapped(scope))
        try:
            futures.wait()  # every shard ends before the backends close (one failing leaves the others running)
        finally:
            close_everywhere(config, scope)
        return results_of(futures)

    results = mapped() if config.runner.kind == "threads" else \
        flow(mapped, name=f"{stage}-shards", task_runner=cluster_runner(config.runner))()
    return sum(results, ShardResult())


def log_outcome(stage: str, config: FactoryConfig, total: ShardResult) -> None:
    """Logs what a stage's total means (`outcome`: warnings); raises when it produced nothing usable.
    The flows call it after logging the stage's spend, so a failed stage still says what it spent."""
    for warning in outcome(stage, config, total):
        get_run_logger().warning("%s: %s", stage, warning)


async def closed_off_loop(scope: str) -> None:
    """`close_backends(scope)` on a dask worker, in a thread: stopping a server or freeing a model does
    not hold up the worker's event loop (its heartbeats)."""
    await asyncio.get_running_loop().run_in_executor(None, close_backends, scope)


def close_everywhere(config: FactoryConfig, scope: str) -> None:
    """Closes the backends the stage's shard tasks opened for `scope`: this process's (threads), every
    dask worker's (a worker that fails to close one is logged); a ray worker closes its own at each
    task's end."""
    if config.runner.kind == "threads":
        close_backends(scope)
    elif config.runner.kind == "dask":
        closed = FlowRunContext.get().task_runner.client.run(closed_off_loop, scope, on_error="return")
        for worker, result in closed.items():  # a lost worker: nothing to close
            if isinstance(result, BaseException):
                get_run_logger().warning("worker %s could not close its backends: %s", worker, result)


def run_shard_here(name: str, cfg: FactoryConfig, data: DataDir, item: str, scope: str = "") -> ShardResult:
    """`run_shard` in the process that runs the task: a dask or ray worker's console, like the CLI's,
    shows an error the CLI explains in one line without its traceback (Prefect sets its handlers up
    anew in a worker)."""
    prefect_secrets()
    if cfg.runner.kind != "threads":
        quiet_explained_tracebacks()
    try:
        return run_shard(name, cfg, data, item, scope)
    finally:
        if cfg.runner.kind == "ray":  # no call reaches every ray worker at the stage's end
            close_backends(scope)


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
