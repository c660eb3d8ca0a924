"""`gemini` teacher: google-genai (not the deprecated google-generativeai).

k paths as k candidates of one call where the model allows `candidate_count`, else k calls
with distinct seeds. Thought summaries are asked for (`include_thoughts`) and become the
reasoning; a model that rejects thinking settings is asked without them from then on.
Images go inline as PNG parts.
"""

from pathlib import Path

from tasks.teachers import Completion, Refused, Request, Transient, refused_feature, retry_after, share
from tasks.teachers.secrets import api_key

GEMINI_URL = "https://generativelanguage.googleapis.com/"
FEATURES = {"n": r"candidate[_ ]?count|candidates?", "thoughts": r"think|thought"}
FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}


class GeminiTeacher:
    backend = "gemini"
    default_key_env = "GEMINI_API_KEY"

    def __init__(self, model: str, endpoint):
        self.model, self.endpoint = model, endpoint
        self.base_urls = list(endpoint.base_urls) or [GEMINI_URL]
        self.identity = endpoint.identity or f"{self.backend}/{model}"
        self.refused: set[str] = set()
        self._clients: dict = {}

    @classmethod
    def from_config(cls, cfg) -> "GeminiTeacher":
        return cls(cfg.model, cfg.endpoint)

    def client(self, url: str):
        from google import genai
        from google.genai import types

        if url not in self._clients:
            key = api_key(self.endpoint.api_key_secret, self.endpoint.api_key_env or self.default_key_env)
            if key is None:
                env = self.endpoint.api_key_env or self.default_key_env
                raise PermissionError(f"gemini teacher needs an API key: set {env} "
                                      "(or endpoint.api_key_env / endpoint.api_key_secret)")
            # One attempt per call (retry_options=None): retries and limits are the engine's.
            options = types.HttpOptions(base_url=url, timeout=int(self.endpoint.timeout_s * 1000))
            self._clients[url] = genai.Client(api_key=key, http_options=options)
        return self._clients[url]

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aio.aclose()
        self._clients.clear()

    async def send(self, base_url: str, requests: list[Request]) -> list[Completion]:
        client = self.client(base_url)
        try:
            resp = await client.aio.models.generate_content(model=self.model, contents=contents(requests[0]),
                                                            config=self.config(requests))
        except Exception as e:  # noqa: BLE001  translated, not swallowed
            raise self.classify(e) from e
        return completions(resp)[: len(requests)]

    def config(self, requests: list[Request]):
        from google.genai import types

        r, p = requests[0], requests[0].params
        system = "\n\n".join(c for role, c in r.messages if role == "system") or None
        return types.GenerateContentConfig(
            system_instruction=system, temperature=p.temperature, top_p=p.top_p, max_output_tokens=p.max_new_tokens,
            seed=p.seed + r.sample_index, candidate_count=len(requests) if len(requests) > 1 else None,
            thinking_config=None if "thoughts" in self.refused else types.ThinkingConfig(include_thoughts=True),
        )

    def classify(self, e: Exception) -> Exception:
        from google.genai import errors

        if isinstance(e, errors.APIError):
            code, msg = e.code or 0, str(e.message or e)
            if code in (408, 409, 429) or code >= 500:
                wait = retry_after(getattr(e.response, "headers", None)) or retry_delay(e.details)
                return Transient(f"HTTP {code}: {msg}", wait)
            feature = refused_feature(msg, FEATURES) if code in (400, 422) else None
            if feature:
                if feature != "n":
                    self.refused.add(feature)
                return Refused(feature, msg)
            return e
        if is_transport_error(e) or isinstance(e, (ValueError, KeyError, TypeError)):
            return Transient(f"{type(e).__name__}: {e}")  # dropped connection, timeout or malformed body
        return e


def contents(r: Request) -> list:
    from google.genai import types

    turns = [(role, c) for role, c in r.messages if role != "system"]
    out = [types.Content(role="model" if role == "assistant" else "user", parts=[types.Part.from_text(text=c)])
           for role, c in turns]
    for img in r.images:
        out[-1].parts.append(types.Part.from_bytes(data=Path(img.path).read_bytes(), mime_type="image/png"))
    return out


def completions(resp) -> list[Completion]:
    """One completion per candidate: thought parts are the reasoning; usage shared out by length."""
    if not resp.candidates:
        raise ValueError(f"response has no candidates (prompt feedback: {resp.prompt_feedback})")
    out = []
    for cand in resp.candidates:
        parts = (cand.content.parts if cand.content else None) or []
        thoughts = "".join(p.text or "" for p in parts if p.thought)
        text = "".join(p.text or "" for p in parts if not p.thought)
        reason = cand.finish_reason.name if hasattr(cand.finish_reason, "name") else str(cand.finish_reason or "STOP")
        out.append(Completion(content=text.strip(), reasoning=thoughts.strip() or None,
                              finish_reason=FINISH.get(reason, reason.lower()), prompt_tokens=0,
                              completion_tokens=0, latency_s=0.0))
    u = resp.usage_metadata
    prompt = (u.prompt_token_count or 0) if u else 0
    output = ((u.candidates_token_count or 0) + (u.thoughts_token_count or 0)) if u else 0
    for c, p, o in zip(out, share(prompt, [1] * len(out)),
                       share(output, [len(c.content) + len(c.reasoning or "") for c in out]), strict=True):
        c.prompt_tokens, c.completion_tokens = p, o
    return out


def retry_delay(details) -> float | None:
    """google.rpc.RetryInfo's `retryDelay` ("30s") from an error body, if present."""
    try:
        for d in (details or {}).get("error", {}).get("details", []):
            if "retryDelay" in d:
                return float(str(d["retryDelay"]).rstrip("s"))
    except (AttributeError, ValueError):
        return None
    return None


def is_transport_error(e: Exception) -> bool:
    """A dropped connection or a timeout from whichever HTTP library google-genai runs on."""
    import importlib

    kinds: list[type] = [TimeoutError, ConnectionError]
    for module, name in (("httpx", "TransportError"), ("httpx2", "TransportError"), ("aiohttp", "ClientError")):
        try:
            kinds.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return isinstance(e, tuple(kinds))
