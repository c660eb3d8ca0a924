"""The local dask / ray cluster that shard stages run on (`runner.kind: dask | ray` without an
address): `distillery run` starts one before its first shard stage and stops it after the last
(caption, sample, verify, select), so training gets the workers' memory back; a stage run alone, and
each stage of `distill` (whose rounds alternate sampling and training), starts its own. Starting one
costs seconds each time (here, on 2 busy cores: dask 6 s, ray 19 s), and its workers import the
project anew. With `runner.address` the user's own cluster is used and never started or stopped here."""

from contextlib import contextmanager

from schemas.config import RunnerConfig

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
    from prefect import get_run_logger

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
