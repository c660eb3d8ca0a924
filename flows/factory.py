"""`factory`: every stage in order, each as a subflow, on one config; `distill`: rounds of it, each
round's best student teaching the next (students/rounds.py).

    distillery run --config configs/default.yaml          # no Prefect server needed
    distillery distill --config configs/rounds.yaml
    prefect deploy --name factory && prefect deployment run 'factory/factory'
"""

import resource
import time
from contextlib import ExitStack
from pathlib import Path

from prefect import flow, get_run_logger

from flows.clusters import FIRST_SHARD_STAGE, LAST_SHARD_STAGE, one_cluster
from flows.stages import DEFAULT, STAGES, configured, data_of, documented
from flows.ui import factory_progress, publish_report
from schemas.config import FactoryConfig
from students.rounds import round_config, round_teacher, write_rounds

ONCE = ("ingest", "caption")  # stages a distill run does once, before its rounds


@flow(name="factory")
@documented
def factory(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """The whole factory, ingest to report; the report and its tables are artifacts of this run."""
    config = configured(config, config_file)
    logger = get_run_logger()
    logger.info("run %s; data directory %s", config.run, Path(config.data_dir).resolve())
    results, wall, rss = {}, {}, {}
    with factory_progress(list(STAGES)), ExitStack() as cluster:
        current = config  # from the first shard stage to the last: the runner reaches the run's cluster
        for name, stage in STAGES.items():
            if name == FIRST_SHARD_STAGE:
                current = config.model_copy(update={"runner": cluster.enter_context(one_cluster(config.runner))})
            start = time.perf_counter()
            results[name] = stage(config=current)
            if name == LAST_SHARD_STAGE:
                cluster.close()  # the workers' memory back before training
                current = config
            wall[name] = round(time.perf_counter() - start, 1)
            rss[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)  # KiB -> GiB
            logger.info("%s took %.1f s (peak memory so far %.2f GiB)", name, wall[name], rss[name])
    publish_report(config.run, Path(results["report"]), Path(config.data_dir))
    return results | {"wall_s": wall, "peak_rss_gib": rss}


@flow(name="distill")
@documented
def distill(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """`rounds` rounds of sample -> verify -> select -> arms -> train -> evaluate -> report: round 1 asks the
    configured teacher, every later round the previous round's best student. reports/RUN/rounds.md compares
    the rounds."""
    config = configured(config, config_file)
    logger, data = get_run_logger(), data_of(config)
    results = {name: STAGES[name](config=config) for name in ONCE}
    rounds, teacher_dir = [], None
    for r in range(1, config.rounds + 1):
        cfg = round_config(config, r, teacher_dir)
        logger.info("round %d of %d (run %s): teacher %s", r, config.rounds, cfg.run,
                    cfg.sample.model if teacher_dir else f"{cfg.sample.teacher}/{cfg.sample.model}")
        with factory_progress([n for n in STAGES if n not in ONCE]):
            done = {name: stage(config=cfg) for name, stage in STAGES.items() if name not in ONCE}
        chosen = round_teacher(cfg, data)
        best, accuracy = chosen["student"], chosen["accuracy"]
        rounds.append(dict(round=r, run=cfg.run, teacher=done["arms"]["teacher"], best=best, best_accuracy=accuracy,
                           chosen_on=chosen["split"] if chosen["on_val"] else f"{chosen['split']} (no val split)",
                           accuracy={n: e["accuracy"] for n, e in done["evaluate"].items()
                                     if e.get("accuracy") is not None},
                           new_requests=done["sample"]["new"], report=done["report"]))
        logger.info("round %d: best student %s (accuracy %.3f on %s)", r, best, accuracy, chosen["split"])
        teacher_dir = data.student(cfg.run, best)
    path = write_rounds(config, data, rounds)
    logger.info("rounds: %s", path.resolve())
    return results | {"rounds": rounds, "summary": str(path)}
