"""`factory`: every stage in order, each as a subflow, on one config.

    distillery run --config configs/default.yaml          # no Prefect server needed
    prefect deploy --name factory && prefect deployment run 'factory/factory'
"""

from prefect import flow

from flows.stages import DEFAULT, STAGES
from schemas.config import FactoryConfig


@flow(name="factory")
def factory(config: FactoryConfig = DEFAULT) -> dict:
    return {name: stage(config=config) for name, stage in STAGES.items()}
