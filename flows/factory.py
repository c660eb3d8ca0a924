"""`factory`: every stage in order, each as a subflow, on one config.

    distillery run --config configs/default.yaml          # no Prefect server needed
    prefect deploy --name factory && prefect deployment run 'factory/factory'
"""

import resource
import time
from pathlib import Path

from prefect import flow, get_run_logger

from flows.stages import DEFAULT, STAGES, configured, documented
from flows.ui import factory_progress, publish_report
from schemas.config import FactoryConfig


@flow(name="factory")
@documented
def factory(config_file: str | None = None, config: FactoryConfig = DEFAULT) -> dict:
    """The whole factory, ingest to report; the report and its tables are artifacts of this run."""
    config = configured(config, config_file)
    logger = get_run_logger()
    logger.info("run %s; data directory %s", config.run, Path(config.data_dir).resolve())
    results, wall, rss = {}, {}, {}
    with factory_progress(list(STAGES)):
        for name, stage in STAGES.items():
            start = time.perf_counter()
            results[name] = stage(config=config)
            wall[name] = round(time.perf_counter() - start, 1)
            rss[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)  # KiB -> GiB
            logger.info("%s took %.1f s (peak memory so far %.2f GiB)", name, wall[name], rss[name])
    publish_report(config.run, Path(results["report"]), Path(config.data_dir))
    return results | {"wall_s": wall, "peak_rss_gib": rss}
