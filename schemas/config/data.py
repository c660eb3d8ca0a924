"""The data stages' sections: sample, verify, select, arms and export."""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from schemas.config.backends import EndpointConfig, ExtractorConfig, VllmConfig
from schemas.config.base import EMBEDDED, Arm, Section, Split, Variant, unique
from schemas.experiment import ARM_NAMES


class SampleConfig(Section):
    teacher: Literal["local", "openai", "gemini", "vllm", "student"] = Field(
        "local", description="Teacher backend; `student`: a trained student (the `distill` flow's later rounds).")
    model: str = Field(
        EMBEDDED, description="local: `embedded`, a local directory or a hub id; openai / gemini: the API's model "
        "name; vllm: the model `vllm serve` loads (hub id or directory); student: the student's directory "
        "(students/RUN/NAME in the data directory).",
    )
    k: int = Field(2, ge=1, description="Sampled reasoning paths per problem and prompt variant.")
    variants: Annotated[list[Variant], AfterValidator(unique)] = Field(["plain", "lecture"], min_length=1, description="Prompt variants to sample.")
    splits: Annotated[list[Split], AfterValidator(unique)] = Field(["train"], min_length=1, description="Splits whose problems the teacher solves.")
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature (0: greedy, then k paths are alike).")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling: smallest token set with this much "
                         "probability.")
    max_new_tokens: int = Field(128, ge=1, description="Longest answer, in tokens (reasoning included); a longer one "
                                "is kept as truncated.")
    think_prompt: bool = Field(False, description="Ask the teacher to reason inside think tags before a short "
                               "solution: a plain chat teacher then gives a chain of thought apart from its solution "
                               "(the `teacher_cot` arm); reasoning models give one without it.")
    stop_at_answer: bool = Field(True, description="local teacher: end a path once its closing \"The answer is ...\" "
                                 "sentence is complete (remote teachers end their answers themselves).")
    batch_size: int = Field(64, ge=1, description="local teacher: sequences generated together (rows leave the "
                            "batch as they finish).")
    engine: Literal["auto", "transformers", "llama_cpp"] = Field(
        "transformers", description="local teacher: what runs the model. `llama_cpp`: llama.cpp "
        "(llama-cpp-python) on a GGUF (the embedded model's own file or a path ending .gguf); `auto`: llama.cpp "
        "when it is installed and the model is a GGUF, else transformers. llama.cpp computes on the quantized "
        "weights, so its answers differ now and then: they are cached apart (its identity ends in +llama.cpp).")
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="local / student teacher on the transformers engine: the weights' and activations' "
        "type. bfloat16 halves the weights read per token and, on CPUs that multiply bfloat16 natively (AVX512-BF16, "
        "AMX), samples about twice as fast; its answers are those of the same model to bfloat16 rounding (greedy "
        "paths part from float32's now and then), so they are cached apart (identity ending in +bf16).")
    seed: int = Field(0, description="Sampling seed; path i of a request uses seed + i where the backend takes seeds.")
    images: bool = Field(False, description="Send the problem's image inline (vision teachers, a vlm student "
                         "teacher) besides its caption; rounds with vlm students turn it on.")
    captions: bool = Field(True, description="Put an image problem's caption in the teacher's prompt; false "
                           "(with `images`): the picture alone, as rounds of vlm students trained without "
                           "train.captions are asked.")
    batch: bool = Field(False, description="openai / gemini: ask through the provider's batch API (about half the "
                        "price, answers within a day); a run that dies while a batch runs resumes polling it.")
    batch_poll_s: float = Field(60.0, gt=0, description="batch: seconds between polls of a running batch.")
    batch_price: float = Field(0.5, gt=0, le=1, description="batch: the batch price as a share of the online price "
                               "(OpenAI and Gemini: 0.5), used in the cost columns.")
    max_prompt_tokens: int = Field(16384, ge=16, description="Problems whose prompt is longer (estimated at 4 "
                                   "characters per token) are not sent; they go to rejects as prompt_too_long.")
    endpoint: EndpointConfig = Field(EndpointConfig(), description="openai / gemini / vllm: where the teacher is and "
                                     "how hard to push it.")
    vllm: VllmConfig = Field(VllmConfig(), description="vllm: how the factory starts `vllm serve`.")

    @model_validator(mode="after")
    def _batch_needs_a_batch_api(self) -> "SampleConfig":
        if self.batch and self.teacher not in ("openai", "gemini"):
            raise ValueError(f"batch needs the openai or gemini teacher (their batch APIs), not {self.teacher}")
        if self.batch and self.endpoint.budget_usd is not None:
            raise ValueError("sample.endpoint.budget_usd caps requests sent one by one; a batch is priced only once "
                             "it is done: leave budget_usd out with batch (or batch: false)")
        if not self.captions and not self.images:
            raise ValueError("sample.captions false sends image problems without their caption: set sample.images "
                             "so the teacher sees the picture")
        if self.engine == "llama_cpp" and (self.teacher != "local" or not (
                self.model == EMBEDDED or self.model.endswith(".gguf"))):
            raise ValueError(f"sample.engine llama_cpp runs a GGUF on the local teacher: model `embedded` or a path "
                             f"ending .gguf, not {self.teacher} {self.model!r} (use engine transformers or auto)")
        if self.dtype != "float32" and (self.teacher not in ("local", "student") or self.engine == "llama_cpp"):
            raise ValueError(f"sample.dtype {self.dtype} is for the local or student teacher on the transformers "
                             f"engine, not {self.teacher} on engine {self.engine} (llama.cpp keeps its GGUF's own "
                             "weights; remote teachers choose their own)")
        return self


def dtype_suffix(dtype: str) -> str:
    """The identity suffix of a local teacher computing in `dtype`: none for float32 (the answers cached so far)."""
    return {"float32": "", "bfloat16": "+bf16"}[dtype]


class VerifyConfig(Section):
    rel_tol: float = Field(1e-4, ge=0.0, description="Relative tolerance for numeric answers.")
    abs_tol: float = Field(1e-6, ge=0.0, description="Absolute tolerance for numeric answers.")
    time_limit_s: float = Field(10.0, gt=0, description="Per-item limit for free-form grading (mathruler, sympy).")
    workers: int = Field(2, ge=1, description="Processes grading free-form answers.")
    judge: ExtractorConfig | None = Field(
        None, description="A model that extracts the final answer where the rules find none (through the request "
        "engine and cache); its verdicts say so in `grader`.")


class SelectConfig(Section):
    policy: Literal["shortest_correct", "all_correct", "length_capped", "reflection_truncated"] = Field(
        "shortest_correct", description="Which correct trace(s) to keep (see tasks/select.py).")
    max_tokens: int | None = Field(None, ge=1, description="length_capped: longest trace kept, in completion tokens.")
    finished_only: bool = Field(True, description="Keep only finished traces: not truncated, and committing to "
                                "an answer (found_by not none: a commitment, not a mention); the rest are counted as n_unfinished.")


class ArmsConfig(Section):
    arms: Annotated[list[Arm], AfterValidator(unique)] = Field(list(ARM_NAMES), description="Student training sets to build (and train); each is "
                            "declared in schemas/experiment.py.")
    teacher: str | None = Field(
        None, description="Teacher whose selected traces the arms use: a cache identity such as `openai/gpt-4o` "
        "or an imported teacher's name. Default: the one `sample` configures.",
    )
    coverage: Literal["matched", "all"] = Field(
        "matched", description="matched: every arm keeps only the training problems where every built arm has an "
        "example, so both sides of each hypothesis train on the same problems (one adapter per arm serves every "
        "contrast); all: each arm on every problem it can use (more data, but a contrast then also compares which "
        "problems were trained on, e.g. the ones the teacher solved).")
    image_overlap: bool = Field(
        False, description="Also leave out training problems that show the same picture as a val or test problem, "
        "whatever their question (they are flagged and counted either way).")
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
