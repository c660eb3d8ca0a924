"""A model behind a backend: where it lives (endpoint, vLLM), its price, and the sections that
name one (caption, references, judges, the answer extractor)."""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from schemas.config.base import SafeName, Section, unique, with_scheme


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
    budget_usd: float | None = Field(
        None, gt=0, description="The most this stage may spend on new requests to this backend, at the model's "
        "price in `prices` (cached answers cost nothing): a request group is not sent when what it could cost at "
        "most (its prompt, max_new_tokens a path) would take the spend past it; what arrived is stored and the "
        "stage ends saying what was spent. A re-run with a higher cap asks only the rest. None: no cap.")


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
