"""Serving fixtures: uvicorn servers on 127.0.0.1 in threads, a fake OpenAI-compatible engine with
fault modes, and the real stack (transformers serve running the tiny model + the gateway).

The fake engine picks its behaviour from the last user message: "mode:slow", "mode:500",
"mode:garbage", "mode:die" (stream cut after two chunks), "mode:stall" (stream stops sending);
"mode:echo TEXT" streams TEXT back in 4-character chunks, 20 ms apart; anything else answers
normally. It records every body it receives in `fake_engine.bodies`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

SLOW_S = 3.0  # the fake engine's delay in slow/stall modes; gateways under test time out at 1 s
ECHO = "mode:echo "


@dataclass
class RunningServer:
    url: str
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def run_app(app) -> RunningServer:
    """Serve an ASGI app on a free 127.0.0.1 port in a daemon thread."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "test server did not start"
        time.sleep(0.02)
    return RunningServer(f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread)


def _chunk(content: str | None = None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {"role": "assistant"}
    chunk = {
        "id": "fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta if not finish else {}, "finish_reason": finish}],
    }
    if finish:
        chunk["usage"] = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    return f"data: {json.dumps(chunk)}\n\n"


def fake_engine_app(bodies: list) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        bodies.append(body)
        mode = body["messages"][-1]["content"]
        stream = body.get("stream")
        if mode == "mode:slow":
            await asyncio.sleep(SLOW_S)
        if mode == "mode:500":
            return JSONResponse({"error": {"message": "CUDA out of memory"}}, status_code=500)
        if mode == "mode:garbage":
            media = "text/event-stream" if stream else "application/json"
            return PlainTextResponse("data: {not json\n\n", media_type=media)
        if stream:
            return StreamingResponse(_stream(mode), media_type="text/event-stream")
        message = {"role": "assistant", "content": "What do you think?"}
        return {
            "id": "fake", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11},
        }  # fmt: skip

    async def _stream(mode: str):
        yield _chunk()
        if mode.startswith(ECHO):
            text = mode[len(ECHO) :]
            for i in range(0, len(text), 4):
                await asyncio.sleep(0.02)
                yield _chunk(text[i : i + 4])
            yield _chunk(finish="stop")
            yield "data: [DONE]\n\n"
            return
        yield _chunk("What ")
        if mode == "mode:die":
            raise RuntimeError("engine crashed")  # uvicorn drops the connection mid-body
        if mode == "mode:stall":
            await asyncio.sleep(SLOW_S)
        yield _chunk("do you think?")
        yield _chunk(finish="stop")
        yield "data: [DONE]\n\n"

    return app


@pytest.fixture
def serve_app():
    """Start ASGI apps with `run_app`; all stopped when the test ends."""
    started: list[RunningServer] = []

    def start(app) -> RunningServer:
        started.append(run_app(app))
        return started[-1]

    yield start
    for running in started:
        running.stop()


@dataclass
class FakeEngine:
    url: str
    bodies: list = field(default_factory=list)


@pytest.fixture(scope="session")
def fake_engine():
    bodies: list = []
    running = run_app(fake_engine_app(bodies))
    yield FakeEngine(running.url, bodies)
    running.stop()


@pytest.fixture(scope="session")
def gateway_factory():
    """Start gateways (real uvicorn) with given Settings overrides; all stopped at session end."""
    from server.gateway import create_app
    from server.settings import Settings

    started: list[RunningServer] = []

    def make(**overrides) -> str:
        running = run_app(create_app(Settings.from_env({}, **overrides)))
        started.append(running)
        return running.url

    yield make
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def real_stack(tiny_base: Path):
    """transformers serve running the tiny model, with the gateway in front (both real)."""
    from server.launch import serve_in_background

    handle = serve_in_background(tiny_base, engine="transformers", start_timeout_s=240)
    yield handle
    handle.stop()
