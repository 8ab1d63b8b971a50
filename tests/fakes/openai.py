"""A local OpenAI-compatible server for tests: ``/v1/chat/completions`` with scripted answers.

Each request takes the next step of the script (or asks a function for it). A step is
``{"content": str | None, "tool_calls": [{"name": ..., "args": {...}}], "usage": (in, out)}``. Every tool
call gets an ``id`` (clients need it). Plain JSON and SSE streaming (with a usage chunk when asked). An
outage: ``{"status": 503}`` answers that error, ``{"delay": seconds}`` answers that late (a timeout).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

Step = dict[str, Any]
Steps = list[Step] | Callable[[dict[str, Any]], Step]
DEFAULT_USAGE = (100, 20)


class Script:
    def __init__(self, steps: list[Step] | Callable[[dict[str, Any]], Step]):
        self.steps = steps
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def next(self, body: dict[str, Any]) -> Step:
        with self._lock:
            self.requests.append(body)
            if callable(self.steps):
                return self.steps(body)
            if not self.steps:
                return {"content": "(script exhausted)"}
            return self.steps.pop(0)


def _tool_calls(step: Step) -> list[dict[str, Any]]:
    return [{"id": tc.get("id") or f"call_{uuid.uuid4().hex[:12]}", "type": "function",
             "function": {"name": tc["name"], "arguments": json.dumps(tc.get("args", {}))}}
            for tc in step.get("tool_calls") or []]


def make_app(script: Script) -> Any:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Any:
        body = await request.json()
        step = script.next(body)
        if step.get("delay"):
            await asyncio.sleep(float(step["delay"]))
        if step.get("status"):
            return JSONResponse({"error": {"message": "scripted outage", "type": "server_error"}},
                                status_code=int(step["status"]))
        calls = _tool_calls(step)
        pin, pout = step.get("usage", DEFAULT_USAGE)
        usage = {"prompt_tokens": pin, "completion_tokens": pout, "total_tokens": pin + pout}
        finish = "tool_calls" if calls else "stop"
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:10]}", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": step.get("content")}
            if calls:
                message["tool_calls"] = calls
            return JSONResponse({**base, "object": "chat.completion", "usage": usage,
                                 "choices": [{"index": 0, "message": message, "finish_reason": finish}]})

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            return "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason}]}) + "\n\n"

        def events() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            content = step.get("content") or ""
            for i, word in enumerate(content.split(" ")):
                if word or i:
                    yield chunk({"content": (" " if i else "") + word})
            for i, tc in enumerate(calls):
                yield chunk({"tool_calls": [{"index": i, **tc}]})
            yield chunk({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                yield "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [],
                                             "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


class FakeOpenAI:
    """Run the fake on 127.0.0.1 in a thread: ``with FakeOpenAI(script) as url: ...``."""

    def __init__(self, script: Script):
        self.script = script
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> str:
        import uvicorn

        config = uvicorn.Config(make_app(self.script), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


@pytest.fixture()
def fake_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Steps], Script]]:
    """``fake_llm(steps)`` starts the local fake OpenAI server with a script and points the agents at it
    (LLM mode); the servers stop at the end of the test."""
    servers: list[FakeOpenAI] = []

    def start(steps: Steps) -> Script:
        script = Script(steps)
        server = FakeOpenAI(script)
        url = server.__enter__()
        servers.append(server)
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-fake")
        monkeypatch.setenv("LEVQOR_LLM_MAX_RETRIES", "0")
        return script

    yield start
    for server in servers:
        server.__exit__(None, None, None)
