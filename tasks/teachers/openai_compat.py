"""`openai` teacher: the openai SDK against any OpenAI-compatible base URL.

OpenAI, DeepSeek, a vLLM or llama.cpp server. k paths go out as one request with `n=k`; an
endpoint that refuses `n` (or ignores it) gets k requests with distinct seeds from then on
(the engine remembers). Reasoning comes from `message.reasoning` (vLLM's reasoning parser),
`message.reasoning_content` (DeepSeek) or `<think>` tags in the content.
"""

import base64
import json

import openai

from tasks.teachers import (
    Completion,
    Refused,
    Request,
    Transient,
    refused_feature,
    retry_after,
    share,
    split_think,
)
from tasks.teachers.secrets import api_key

OPENAI_URL = "https://api.openai.com/v1"
# Parameters an endpoint may reject, and how its error names them.
FEATURES = {"n": r"(?<![\w.-])[`'\"]?n[`'\"]?(?![\w-])", "max_tokens": r"max_tokens",
            "temperature": r"temperature", "top_p": r"top_p", "seed": r"seed"}


class OpenAITeacher:
    backend = "openai"
    default_url = OPENAI_URL
    default_key_env = "OPENAI_API_KEY"

    def __init__(self, model: str, endpoint):
        self.model, self.endpoint = model, endpoint
        self.base_urls = list(endpoint.base_urls) or [self.default_url]
        self.identity = endpoint.identity or f"{self.backend}/{model}"
        self.refused: set[str] = set()  # parameters this endpoint rejected; no longer sent
        self._clients: dict[str, openai.AsyncOpenAI] = {}

    @classmethod
    def from_config(cls, cfg) -> "OpenAITeacher":
        return cls(cfg.model, cfg.endpoint)

    def client(self, url: str) -> openai.AsyncOpenAI:
        if url not in self._clients:
            key = api_key(self.endpoint.api_key_secret, self.endpoint.api_key_env or self.default_key_env)
            if key is None and url == OPENAI_URL:  # custom servers (vLLM, llama.cpp) often need none
                env = self.endpoint.api_key_env or self.default_key_env
                raise PermissionError(f"{self.backend} teacher needs an API key: set {env} "
                                      "(or endpoint.api_key_env / endpoint.api_key_secret)")
            # Retries and time limits are the engine's, so the SDK makes exactly one attempt.
            self._clients[url] = openai.AsyncOpenAI(base_url=url, api_key=key or "EMPTY", max_retries=0,
                                                    timeout=self.endpoint.timeout_s)
        return self._clients[url]

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.close()
        self._clients.clear()

    async def send(self, base_url: str, requests: list[Request]) -> list[Completion]:
        try:
            resp = await self.client(base_url).chat.completions.create(**self.body(requests))
        except Exception as e:  # noqa: BLE001  translated, not swallowed
            raise classify(e, self.refused) from e
        return completions(resp)[: len(requests)]

    def body(self, requests: list[Request]) -> dict:
        r, p = requests[0], requests[0].params
        body = {"model": self.model, "messages": wire_messages(r),
                "max_completion_tokens" if "max_tokens" in self.refused else "max_tokens": p.max_new_tokens,
                "temperature": p.temperature, "top_p": p.top_p, "seed": p.seed + r.sample_index}
        if len(requests) > 1:
            body["n"] = len(requests)
        return {k: v for k, v in body.items() if k not in self.refused}


def classify(e: Exception, refused: set[str] | None = None) -> Exception:
    """The SDK's exception as the engine's: Transient (retry), Refused (adapt) or itself (give up)."""
    if isinstance(e, openai.APIStatusError):
        status, msg = e.status_code, str(e.message)
        if status in (408, 409, 429) or status >= 500:
            return Transient(f"HTTP {status}: {msg}", retry_after(e.response.headers))
        feature = refused_feature(msg, FEATURES) if status in (400, 422) else None
        if feature:
            if refused is not None and feature != "n":
                refused.add(feature)
            return Refused(feature, msg)
        return e
    if isinstance(e, openai.APIConnectionError):  # includes timeouts
        return Transient(f"{type(e).__name__}: {e}")
    if isinstance(e, (openai.APIResponseValidationError, json.JSONDecodeError, ValueError, KeyError, TypeError)):
        return Transient(f"malformed response: {type(e).__name__}: {e}")
    return e


def wire_messages(r: Request) -> list[dict]:
    msgs = [{"role": role, "content": content} for role, content in r.messages]
    if r.images:  # inline, as data URLs: the endpoint needs no access to our disk
        parts = [{"type": "text", "text": msgs[-1]["content"]}]
        parts += [{"type": "image_url", "image_url": {"url": data_url(i.path)}} for i in r.images]
        msgs[-1]["content"] = parts
    return msgs


def data_url(path) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode()


def completions(resp) -> list[Completion]:
    """One completion per choice; the request's token usage shared out (prompt evenly, output by length)."""
    if not getattr(resp, "choices", None):
        raise ValueError("response has no choices")
    out = []
    for ch in sorted(resp.choices, key=lambda c: c.index or 0):
        msg = ch.message
        reasoning = getattr(msg, "reasoning", None) or getattr(msg, "reasoning_content", None)
        content = msg.content or ""
        if reasoning is None:
            reasoning, content = split_think(content)
        out.append(Completion(content=content.strip(), reasoning=reasoning, finish_reason=ch.finish_reason or "stop",
                              prompt_tokens=0, completion_tokens=0, latency_s=0.0))
    usage = resp.usage
    prompt = share(usage.prompt_tokens if usage else 0, [1] * len(out))
    output = share(usage.completion_tokens if usage else 0, [len(c.content) + len(c.reasoning or "") for c in out])
    for c, p, o in zip(out, prompt, output, strict=True):
        c.prompt_tokens, c.completion_tokens = p, o
    return out
