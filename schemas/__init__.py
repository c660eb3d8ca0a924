"""Configuration models, declared parquet schemas and data-directory paths: the contracts
every stage reads and writes."""

from schemas.config import FactoryConfig
from schemas.paths import DataDir
from schemas.tables import SCHEMAS, read_table, write_table

__all__ = ["FactoryConfig", "DataDir", "SCHEMAS", "read_table", "write_table"]
