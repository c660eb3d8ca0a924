"""The local dask / ray cluster that shard stages run on (`runner.kind: dask | ray` without an
address): started once per `run` and shared by its shard stages (caption, sample, verify, select;
stopped before training), once per `distill` (its rounds alternate sampling and training), or
once per stage when a stage runs alone. Starting one costs seconds each time
(here, on 2 busy cores: dask 6 s, ray 19 s), and its workers import the project anew. With
`runner.address` the user's own cluster is used and never started or stopped here."""

from contextlib import contextmanager

from schemas.config import RunnerConfig

LAST_SHARD_STAGE = "select"  # `run` stops its cluster after it, before training
_started: dict[str, str] = {}  # kind -> the scheduler address of the cluster `one_cluster` started


def dask_kwargs(runner: RunnerConfig) -> dict:
    return {"n_workers": runner.workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None,
            "preload": ["flows.dask_worker"]}


def ray_kwargs(runner: RunnerConfig) -> dict:
    return {"num_cpus": runner.workers, "include_dashboard": False}


def cluster_runner(runner: RunnerConfig):
    """prefect-dask's or prefect-ray's task runner on `runner.address`, on the cluster `one_cluster`
    started, or on a local cluster of `workers` processes of its own."""
    if runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        address = runner.address or _started.get("dask")
        return DaskTaskRunner(address=address) if address else DaskTaskRunner(cluster_kwargs=dask_kwargs(runner))
    from prefect_ray import RayTaskRunner

    # prefect-ray uses a ray instance this process has initialised (one_cluster's) and leaves it running
    return RayTaskRunner(address=runner.address) if runner.address else RayTaskRunner(init_kwargs=ray_kwargs(runner))


def announce(runner: RunnerConfig, address: str) -> None:
    from prefect import get_run_logger

    get_run_logger().info("a local %s cluster of %d workers at %s runs this flow's shard stages", runner.kind,
                          runner.workers, address)


@contextmanager
def one_cluster(runner: RunnerConfig):
    """Within: every shard stage of this process runs on one local cluster, stopped on the way out."""
    if runner.kind == "threads" or runner.address or runner.kind in _started:
        yield
        return
    if runner.kind == "dask":
        from distributed import LocalCluster

        with LocalCluster(**dask_kwargs(runner)) as cluster:
            _started["dask"] = cluster.scheduler_address
            announce(runner, cluster.scheduler_address)
            try:
                yield
            finally:
                _started.pop("dask", None)
        return
    import ray

    if ray.is_initialized():  # the caller's own instance: used, not stopped
        yield
        return
    context = ray.init(**ray_kwargs(runner))
    _started["ray"] = "local"
    announce(runner, context.address_info.get("address", "local"))
    try:
        yield
    finally:
        _started.pop("ray", None)
        ray.shutdown()
