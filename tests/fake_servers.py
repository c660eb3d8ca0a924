"""Small local HTTP servers that speak the OpenAI chat-completions and Gemini generateContent
wire formats, so the production teacher backends are tested unchanged over real HTTP.

Markers in the prompt script a problem's first attempt: `[429]` (rate limited, retry-after),
`[500]`, `[503]`, `[malformed]` (a 200 with a broken JSON body), `[hang]` (no answer), `[slow]`,
`[length]` (truncated answer), `[empty]` (a 200 with null content and no reasoning), `[emptyone]`
(the second of the k paths empty); `[always500]` fails every attempt, `[alwaysempty]` answers
every attempt empty. Options refuse or ignore `n`.
The server counts every request and every successful (prompt, sample index), so a test can
prove no successful request was repeated.

    python tests/fake_servers.py --kind openai --latency 0.05 --port 8000   # for bench/
"""

import argparse
import asyncio
import base64
import hashlib
import json
import threading
import time
from collections import Counter

from aiohttp import web

MARKERS = ("[429]", "[500]", "[503]", "[malformed]", "[hang]")


def answer_for(prompt: str, index: int) -> tuple[str, str]:
    """(reasoning, answer) the fake teacher gives: deterministic in (prompt, index)."""
    h = int(hashlib.sha256(f"{prompt}:{index}".encode()).hexdigest(), 16)
    if "CORRECT or INCORRECT" in prompt:  # a reasoning judge's request
        return "Checking each step.", "CORRECT" if h % 2 else "INCORRECT"
    letter = "ABCD"[h % 4]
    return f"Path {index}: weighing the options for {h % 997}.", f"The answer is ({letter})."


class LoopbackServer:
    """An aiohttp app (from `app()`) served on 127.0.0.1 from a background thread, as a context
    manager; `port` 0 picks a free port, read back once listening."""

    port: int = 0

    def app(self) -> web.Application:
        raise NotImplementedError

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "LoopbackServer":
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        async def start():
            self._runner = web.AppRunner(self.app(), shutdown_timeout=0.5)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
            started.set()

        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(start(), self._loop)
        started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        async def stop():
            await self._runner.cleanup()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in pending:  # handlers still hanging
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


class FakeServer(LoopbackServer):
    def __init__(self, kind: str = "openai", *, accept_n: bool = True, ignore_n: bool = False,
                 reasoning: str = "reasoning", latency: float = 0.0, hang_s: float = 30.0,
                 thoughts_refused: bool = False, retry_after: float = 0.2, port: int = 0, fail_all: bool = False,
                 status_all: int | None = None, n_error: tuple[int, str] = (400, "n is not supported by this "
                                                                             "server; n must be 1")):
        self.kind, self.accept_n, self.ignore_n, self.reasoning = kind, accept_n, ignore_n, reasoning
        self.latency, self.hang_s, self.thoughts_refused, self.retry_after = latency, hang_s, thoughts_refused, retry_after
        self.port, self.fail_all = port, fail_all  # fail_all: every request gets a 500
        self.status_all = status_all  # every request gets this status (401: a wrong API key)
        self.n_error = n_error  # accept_n=False: the status and message refusing n > 1
        self.attempts: Counter = Counter()  # prompt -> requests received
        self.successes: Counter = Counter()  # (prompt, sample index) -> successful answers sent
        self.statuses: Counter = Counter()  # HTTP status -> count
        self.images: list[str] = []  # sha256 of every image received
        self.bodies: list[dict] = []  # every request body (for asserting what was sent)
        self.headers: list[dict] = []
        self.times: list[float] = []  # monotonic arrival time of every answered request
        self._lock = threading.RLock()
        # OpenAI Batch API: uploaded files, batches, and how they go
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.batch_creates = 0  # batches created (a resumed run must create none)
        self.batch_polls = 2  # retrieves a batch needs before it ends
        self.batch_hold = False  # batches stay in_progress (a run can be killed while one runs)
        self.batch_lines: Counter = Counter()  # custom_id -> batches it was in

    # -- lifecycle --------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/chat/completions", self.openai)
        app.router.add_post("/{version:v1[a-z0-9]*}/models/{model:[^/:]+}:generateContent", self.gemini)
        app.router.add_post("/{version:v1[a-z0-9]*}/models/{model:[^/:]+}:batchGenerateContent", self.gemini_batch)
        app.router.add_get("/{version:v1[a-z0-9]*}/batches/{batch_id}", self.gemini_batch_get)
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{file_id}/content", self.file_content)
        app.router.add_post("/v1/batches", self.create_batch)
        app.router.add_get("/v1/batches/{batch_id}", self.retrieve_batch)
        app.router.add_get("/health", lambda r: web.Response(text="ok"))
        return app

    @property
    def url(self) -> str:
        return self.root + ("/v1" if self.kind == "openai" else "/")

    def attempts_with(self, marker: str) -> int:
        """Requests received for prompts containing `marker`."""
        return sum(n for prompt, n in self.attempts.items() if marker in prompt)

    def repeated_successes(self) -> dict:
        return {k: n for k, n in self.successes.items() if n > 1}

    # -- shared behaviour -------------------------------------------------------------------
    async def scripted_failure(self, prompt: str, error) -> web.Response | None:
        """The scripted response for this attempt, or None to answer normally."""
        with self._lock:
            self.attempts[prompt] += 1
            first = self.attempts[prompt] == 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if "[slow]" in prompt:
            await asyncio.sleep(0.3)
        if self.status_all == 401:
            return error(401, "Incorrect API key provided. You can find your API key at the account page.")
        if self.status_all:
            return error(self.status_all, "scripted failure")
        if "[always500]" in prompt or self.fail_all:
            return error(500, "internal error")
        if not first:
            return None
        if "[429]" in prompt:
            return error(429, "rate limited", {"retry-after": str(self.retry_after)})
        if "[500]" in prompt:
            return error(500, "internal error")
        if "[503]" in prompt:
            return error(503, "overloaded")
        if "[malformed]" in prompt:
            return web.Response(status=200, text='{"id": "x", "choices": [{"index": 0, "mess', content_type="application/json")
        if "[hang]" in prompt:
            await asyncio.sleep(self.hang_s)
        return None

    def record(self, status: int, request: web.Request, body: dict) -> None:
        with self._lock:
            self.statuses[status] += 1
            self.bodies.append(body)
            self.headers.append(dict(request.headers))
            self.times.append(time.monotonic())

    def empty(self, prompt: str, j: int) -> bool:
        """Whether path j of this attempt's answer is scripted empty."""
        first = self.attempts[prompt] == 1
        return "[alwaysempty]" in prompt or first and ("[empty]" in prompt or "[emptyone]" in prompt and j == 1)

    def succeeded(self, prompt: str, indices: range) -> None:
        with self._lock:
            for i in indices:
                self.successes[(prompt, i)] += 1

    # -- OpenAI chat completions ------------------------------------------------------------
    async def openai(self, request: web.Request) -> web.Response:
        body = await request.json()
        content = body["messages"][-1]["content"]
        if isinstance(content, list):  # text + image parts
            for part in content:
                if part["type"] == "image_url":
                    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                    self.images.append(hashlib.sha256(data).hexdigest())
            content = "".join(p.get("text", "") for p in content)

        def error(status, message, headers=None):
            self.record(status, request, body)
            return web.json_response({"error": {"message": message, "type": "fake", "code": status}},
                                     status=status, headers=headers)

        n = body.get("n", 1)
        if n > 1 and not self.accept_n:
            return error(*self.n_error)
        if (scripted := await self.scripted_failure(content, error)) is not None:
            return scripted
        n = 1 if self.ignore_n else n
        start = body.get("seed", 0)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        choices = [self.openai_choice(content, start + j, j, max_tokens) for j in range(n)]
        self.record(200, request, body)
        self.succeeded(content, range(start, start + n))
        usage = {"prompt_tokens": len(content) // 4, "completion_tokens": 10 * n, "total_tokens": len(content) // 4 + 10 * n}
        return web.json_response({"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                                  "model": body["model"], "choices": choices, "usage": usage})

    def openai_choice(self, prompt: str, index: int, j: int, max_tokens: int) -> dict:
        reasoning, answer = answer_for(prompt, index)
        finish = "length" if "[length]" in prompt else "stop"
        if finish == "length":
            answer = answer[: max(1, min(max_tokens, 5))]
        msg = {"role": "assistant", "content": answer}
        if self.empty(prompt, j):
            return {"index": j, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}
        if self.reasoning == "think":
            msg["content"] = f"<think>{reasoning}</think>\n{answer}"
        elif self.reasoning:  # reasoning (vLLM) or reasoning_content (DeepSeek)
            msg[self.reasoning] = reasoning
        return {"index": j, "message": msg, "finish_reason": finish}

    # -- OpenAI Batch API (files + batches) --------------------------------------------------
    # Markers in a line's prompt script its first batch: `[batchfail]` gets an error line,
    # `[batchexpire]` expires the batch with that line unanswered.
    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        assert form["purpose"] == "batch"
        data = form["file"].file.read()
        with self._lock:
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = data
        return web.json_response({"id": file_id, "object": "file", "bytes": len(data), "created_at": 0,
                                  "filename": form["file"].filename, "purpose": "batch", "status": "processed"})

    async def file_content(self, request: web.Request) -> web.Response:
        return web.Response(body=self.files[request.match_info["file_id"]], content_type="application/octet-stream")

    async def create_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.batch_creates += 1
            batch_id = f"batch_{self.batch_creates}"
            self.batches[batch_id] = {"id": batch_id, "object": "batch", "endpoint": body["endpoint"],
                                      "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                                      "status": "validating", "created_at": 0, "output_file_id": None,
                                      "error_file_id": None, "metadata": body.get("metadata"), "polls": 0,
                                      "request_counts": {"total": 0, "completed": 0, "failed": 0}}
        return web.json_response(self.public(batch_id))

    def public(self, batch_id: str) -> dict:
        return {k: v for k, v in self.batches[batch_id].items() if k != "polls"}

    async def retrieve_batch(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        if f"batches/{batch_id}" in self.batches:  # google-genai asks /v1/batches/N too
            return await self.gemini_batch_get(request)
        with self._lock:
            batch = self.batches[batch_id]
            batch["polls"] += 1
            if batch["status"] in ("validating", "in_progress") and not self.batch_hold:
                if batch["polls"] >= self.batch_polls:
                    self.run_batch(batch)
                else:
                    batch["status"] = "in_progress"
            elif self.batch_hold:
                batch["status"] = "in_progress"
        return web.json_response(self.public(batch_id))

    def run_batch(self, batch: dict) -> None:
        """Answers every line as chat completions would (under the lock)."""
        out, errors, expired = [], [], False
        for line in self.files[batch["input_file_id"]].decode().splitlines():
            req = json.loads(line)
            cid, body = req["custom_id"], req["body"]
            prompt = body["messages"][-1]["content"]
            fate = self.scripted_line(cid, prompt)
            if fate == "expire":
                expired = True
                continue
            if fate == "fail":
                errors.append({"id": f"req-{cid}", "custom_id": cid, "response": {
                    "status_code": 500, "request_id": "r", "body": {"error": {"message": "internal error"}}},
                    "error": None})
                continue
            start, n = body.get("seed", 0), body.get("n", 1)
            choices = [self.openai_choice(prompt, start + j, j, body.get("max_tokens")) for j in range(n)]
            for i in range(start, start + n):
                self.successes[(prompt, i)] += 1
            usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": 10 * n,
                     "total_tokens": len(prompt) // 4 + 10 * n}
            out.append({"id": f"req-{cid}", "custom_id": cid, "error": None, "response": {
                "status_code": 200, "request_id": "r", "body": {
                    "id": "chatcmpl-batch", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": choices, "usage": usage}}})
        for name, lines in (("output_file_id", out), ("error_file_id", errors)):
            if lines:
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = "\n".join(json.dumps(x) for x in lines).encode()
                batch[name] = file_id
        batch["status"] = "expired" if expired else "completed"
        batch["request_counts"] = {"total": len(out) + len(errors), "completed": len(out), "failed": len(errors)}

    def scripted_line(self, cid: str, prompt: str) -> str | None:
        """A batch line's scripted fate on its first batch: "expire", "fail", or None (answered)."""
        self.batch_lines[cid] += 1
        self.attempts[prompt] += 1
        first = self.batch_lines[cid] == 1
        return ("expire" if "[batchexpire]" in prompt and first else
                "fail" if "[batchfail]" in prompt and first else None)

    # -- Gemini Batch Mode (inline requests) ---------------------------------------------------
    async def gemini_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.batch_creates += 1
            name = f"batches/{self.batch_creates}"
            self.batches[name] = {"kind": "gemini", "name": name, "model": request.match_info["model"], "polls": 0,
                                  "state": "BATCH_STATE_PENDING", "requests": body["batch"]["inputConfig"]["requests"][
                                      "requests"], "output": None}
            self.files[name] = json.dumps(body).encode()
        return web.json_response(self.gemini_job(name))

    def gemini_job(self, name: str) -> dict:
        b = self.batches[name]
        meta = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                "model": f"models/{b['model']}", "displayName": "distillery", "state": b["state"], "name": name}
        if b["output"] is not None:
            meta["output"] = {"inlinedResponses": {"inlinedResponses": b["output"]}}
        return {"name": name, "metadata": meta, "done": b["output"] is not None}

    async def gemini_batch_get(self, request: web.Request) -> web.Response:
        name = f"batches/{request.match_info['batch_id']}"
        with self._lock:
            b = self.batches[name]
            b["polls"] += 1
            if b["output"] is None and not self.batch_hold and b["polls"] >= self.batch_polls:
                out, expired = [], False
                for item in b["requests"]:
                    req, cid = item["request"], item["metadata"]["key"]
                    content = "".join(p.get("text", "") for p in req["contents"][-1]["parts"])
                    fate = self.scripted_line(cid, content)
                    if fate == "expire":
                        expired = True
                    elif fate == "fail":
                        out.append({"error": {"code": 13, "message": "internal error"}, "metadata": {"key": cid}})
                    else:
                        out.append({"response": self.gemini_body(content, req.get("generationConfig", {})),
                                    "metadata": {"key": cid}})
                b["output"], b["state"] = out, "BATCH_STATE_EXPIRED" if expired else "BATCH_STATE_SUCCEEDED"
            elif b["output"] is None:
                b["state"] = "BATCH_STATE_RUNNING"
        return web.json_response(self.gemini_job(name))

    # -- Gemini generateContent -------------------------------------------------------------
    async def gemini(self, request: web.Request) -> web.Response:
        body = await request.json()
        parts = body["contents"][-1]["parts"]
        content = "".join(p.get("text", "") for p in parts)
        for p in parts:
            if "inlineData" in p or "inline_data" in p:
                blob = p.get("inlineData") or p.get("inline_data")
                self.images.append(hashlib.sha256(base64.b64decode(blob["data"])).hexdigest())

        def error(status, message, headers=None):
            self.record(status, request, body)
            names = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
            return web.json_response({"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}},
                                     status=status, headers=headers)

        gen = body.get("generationConfig", {})
        n = gen.get("candidateCount", 1)
        if n > 1 and not self.accept_n:
            return error(400, "Multiple candidates is not enabled for this model")
        thinking_cfg = gen.get("thinkingConfig", {})  # proto JSON: camelCase or snake_case
        thinking = thinking_cfg.get("includeThoughts", thinking_cfg.get("include_thoughts", False))
        if thinking and self.thoughts_refused:
            return error(400, "Thinking is not supported by this model.")
        if (scripted := await self.scripted_failure(content, error)) is not None:
            return scripted
        self.record(200, request, body)
        return web.json_response(self.gemini_body(content, gen))

    def gemini_body(self, content: str, gen: dict) -> dict:
        """A generateContent response to `content` under generation config `gen` (counted as answered)."""
        n = gen.get("candidateCount", 1)
        thinking_cfg = gen.get("thinkingConfig", {})
        thinking = thinking_cfg.get("includeThoughts", thinking_cfg.get("include_thoughts", False))
        start = gen.get("seed", 0)
        candidates = []
        for j in range(n):
            reasoning, answer = answer_for(content, start + j)
            finish = "MAX_TOKENS" if "[length]" in content else "STOP"
            out = ([{"text": reasoning, "thought": True}] if thinking else []) + [{"text": answer}]
            out = [] if self.empty(content, j) else out
            candidates.append({"content": {"role": "model", "parts": out}, "finishReason": finish, "index": j})
        self.succeeded(content, range(start, start + n))
        usage = {"promptTokenCount": len(content) // 4, "candidatesTokenCount": 10 * n,
                 "thoughtsTokenCount": 5 * n if thinking else 0, "totalTokenCount": len(content) // 4 + 15 * n}
        return {"candidates": candidates, "usageMetadata": usage, "modelVersion": "fake"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", default="openai")
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args()
    server = FakeServer(args.kind, latency=args.latency, port=args.port)
    web.run_app(server.app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
