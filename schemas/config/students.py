"""The students' sections: training (its methods and the compose student), evaluation and deploy."""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from schemas.config.backends import JudgeConfig
from schemas.config.base import EMBEDDED, PathSetting, Section, unique


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
