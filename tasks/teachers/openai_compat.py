"""`openai` teacher: the chat-completions wire format against any OpenAI-compatible base URL.

OpenAI, DeepSeek, a vLLM or llama.cpp server. k paths go out as one request with `n=k`; an
endpoint that refuses `n` (or ignores it) gets k requests with distinct seeds from then on
(the engine remembers). Reasoning comes from `message.reasoning` (vLLM's reasoning parser),
`message.reasoning_content` (DeepSeek) or `<think>` tags in the content.

Requests go out as plain JSON over one aiohttp session and answers are read as plain dicts (no
SDK models: the stage runs near the wire, see bench/sampling.py); the HTTP status decides
between retry (408, 409, 429, 5xx), adapt (a 400 naming a parameter) and give up.
"""

import base64
import json

import aiohttp

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
# How servers say, in their own words, that they will not give k choices: recognised whatever the
# status (llama.cpp answers 500 at times), so the engine falls back to k seeded requests.
N_REFUSALS = {
    "only one completion choice is allowed": "llama.cpp server",
    "n must be 1 when using greedy sampling": "vLLM, temperature 0",
    "n must be 1": "vLLM and others",
    "multiple completions are not supported": "servers without n",
    "'n' is not supported": "OpenAI reasoning models",
}


class OpenAITeacher:
    backend = "openai"
    default_url = OPENAI_URL
    default_key_env = "OPENAI_API_KEY"

    def __init__(self, model: str, endpoint):
        self.model, self.endpoint = model, endpoint
        self.base_urls = list(endpoint.base_urls) or [self.default_url]
        self.identity = endpoint.identity or f"{self.backend}/{model}"
        self.refused: set[str] = set()  # parameters this endpoint rejected; no longer sent
        self._session: aiohttp.ClientSession | None = None  # created on the engine's loop
        self._headers: dict[str, str] | None = None

    @classmethod
    def from_config(cls, cfg) -> "OpenAITeacher":
        return cls(cfg.model, cfg.endpoint)

    def headers(self) -> dict[str, str]:
        if self._headers is None:
            key = api_key(self.endpoint.api_key_secret, self.endpoint.api_key_env or self.default_key_env)
            if key is None and OPENAI_URL in self.base_urls:  # custom servers (vLLM, llama.cpp) often need none
                env = self.endpoint.api_key_env or self.default_key_env
                raise PermissionError(f"{self.backend} teacher needs an API key: set {env} "
                                      "(or endpoint.api_key_env / endpoint.api_key_secret)")
            self._headers = {"Authorization": f"Bearer {key or 'EMPTY'}", "Content-Type": "application/json"}
        return self._headers

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Limits and time limits are the engine's: no connection cap here, no timeout.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                  timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, base_url: str, requests: list[Request]) -> list[Completion]:
        headers = self.headers()
        url = f"{base_url.rstrip('/')}/chat/completions"
        try:
            async with self.session().post(url, data=json.dumps(self.body(requests)), headers=headers) as r:
                raw = await r.read()
                status, response_headers = r.status, r.headers
        except aiohttp.ClientError as e:  # refused, reset, dropped: worth another attempt
            raise Transient(f"{type(e).__name__}: {e}") from e
        if status >= 400:
            raise classify_status(status, error_message(raw), response_headers, self.refused)
        try:
            return completions(json.loads(raw))[: len(requests)]
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise Transient(f"malformed response: {type(e).__name__}: {e}", billed=True) from e

    def body(self, requests: list[Request]) -> dict:
        r, p = requests[0], requests[0].params
        body = {"model": self.model, "messages": wire_messages(r),
                "max_completion_tokens" if "max_tokens" in self.refused else "max_tokens": p.max_new_tokens,
                "temperature": p.temperature, "top_p": p.top_p, "seed": p.seed + r.sample_index}
        if len(requests) > 1:
            body["n"] = len(requests)
        return {k: v for k, v in body.items() if k not in self.refused}


class HTTPError(Exception):
    """An answer with an error status the engine does not retry (401, 403, 404, a 400 it cannot adapt to)."""

    def __init__(self, status_code: int, message: str):
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code


def error_message(raw: bytes) -> str:
    """The `error.message` of an error body, else the body's start."""
    try:
        body = json.loads(raw)
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body.get("error")
        if message:
            return str(message)
    except (ValueError, AttributeError):
        pass
    return raw[:500].decode(errors="replace")


def classify_status(status: int, message: str, headers, refused: set[str] | None = None) -> Exception:
    """An error status as the engine's: Transient (retry), Refused (adapt) or HTTPError (give up)."""
    if any(wording in message.lower() for wording in N_REFUSALS):
        return Refused("n", message)
    if status in (408, 409, 429) or status >= 500:
        return Transient(f"HTTP {status}: {message}", retry_after(headers))
    feature = refused_feature(message, FEATURES) if status in (400, 422) else None
    if feature:
        if refused is not None and feature != "n":
            refused.add(feature)
        return Refused(feature, message)
    return HTTPError(status, message)


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


def completions(resp: dict) -> list[Completion]:
    """One completion per choice of a chat-completions response (a dict); the request's token
    usage shared out (prompt evenly, output by length)."""
    choices = resp.get("choices") if isinstance(resp, dict) else None
    if not choices:
        raise ValueError("response has no choices")
    out = []
    for ch in sorted(choices, key=lambda c: c.get("index") or 0):
        msg = ch.get("message") or {}
        reasoning = msg.get("reasoning") or msg.get("reasoning_content")
        content = msg.get("content") or ""
        if reasoning is None:
            reasoning, content = split_think(content)
        out.append(Completion(content=content.strip(), reasoning=reasoning, finish_reason=ch.get("finish_reason") or "stop",
                              prompt_tokens=0, completion_tokens=0, latency_s=0.0))
    usage = resp.get("usage") or {}
    prompt = share(usage.get("prompt_tokens") or 0, [1] * len(out))
    output = share(usage.get("completion_tokens") or 0, [len(c.content) + len(c.reasoning or "") for c in out])
    for c, p, o in zip(out, prompt, output, strict=True):
        c.prompt_tokens, c.completion_tokens = p, o
    return out
