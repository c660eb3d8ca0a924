"""One pydantic config for the factory, with a section per stage.

It is the parameter of every Prefect flow (so the UI renders it as a form) and loads from
YAML; unknown keys are errors so a typo never silently falls back to a default.

The sections live in the modules of this package (base, ingest, backends, data, students, report,
factory); every name is importable from `schemas.config` as before.
"""

from schemas.config.backends import (
    EXTRACT_PROMPT,
    JUDGE_PROMPT,
    Backend,
    CaptionConfig,
    EndpointConfig,
    ExtractorConfig,
    JudgeConfig,
    ModelConfig,
    ModelPrice,
    ReferenceConfig,
    VllmConfig,
)
from schemas.config.base import (
    EMBEDDED,
    SAFE_NAME,
    Arm,
    PathSetting,
    SafeName,
    Section,
    Split,
    Variant,
    expanded_path,
    safe_name,
    unique,
    with_scheme,
)
from schemas.config.data import ArmsConfig, ExportConfig, SampleConfig, SelectConfig, VerifyConfig
from schemas.config.factory import FactoryConfig, RunnerConfig, UniqueKeyLoader, yaml12_int
from schemas.config.ingest import (
    SOURCE_NAMES,
    Columns,
    DatasetIngest,
    IngestBase,
    IngestConfig,
    ScienceQAIngest,
    SyntheticIngest,
    default_source,
)
from schemas.config.report import HypothesisConfig, LeaderboardEntry, ReportConfig
from schemas.config.students import (
    ComposeConfig,
    DeployConfig,
    EvaluateConfig,
    GrpoConfig,
    LoraConfig,
    PromptTuningConfig,
    TrainConfig,
)

__all__ = [
    "Arm",
    "Variant",
    "Split",
    "EMBEDDED",
    "SAFE_NAME",
    "safe_name",
    "SafeName",
    "unique",
    "expanded_path",
    "with_scheme",
    "default_source",
    "PathSetting",
    "Section",
    "IngestBase",
    "SyntheticIngest",
    "ScienceQAIngest",
    "Columns",
    "DatasetIngest",
    "IngestConfig",
    "SOURCE_NAMES",
    "EndpointConfig",
    "VllmConfig",
    "ModelPrice",
    "CaptionConfig",
    "Backend",
    "ModelConfig",
    "ReferenceConfig",
    "JUDGE_PROMPT",
    "JudgeConfig",
    "SampleConfig",
    "EXTRACT_PROMPT",
    "ExtractorConfig",
    "VerifyConfig",
    "SelectConfig",
    "ArmsConfig",
    "ExportConfig",
    "LoraConfig",
    "PromptTuningConfig",
    "GrpoConfig",
    "ComposeConfig",
    "TrainConfig",
    "EvaluateConfig",
    "LeaderboardEntry",
    "HypothesisConfig",
    "ReportConfig",
    "DeployConfig",
    "RunnerConfig",
    "FactoryConfig",
    "UniqueKeyLoader",
    "yaml12_int",
]
