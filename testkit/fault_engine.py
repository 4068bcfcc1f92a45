"""A fake OpenAI-compatible engine with fault modes, for the gateway and handler tests.

The engine picks its behaviour from the last user message: "mode:slow", "mode:500",
"mode:garbage", "mode:die" (stream cut after two chunks), "mode:stall" (stream stops sending);
"mode:echo TEXT" streams TEXT back in 4-character chunks, 20 ms apart; anything else answers
normally. It appends every body it receives to `bodies`.

    app = fake_engine_app(bodies)   # serve it with tutor.proc / testkit.asgi
"""

from __future__ import annotations

import asyncio
import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

SLOW_S = 3.0  # the delay in slow/stall modes; gateways under test time out at 1 s
ECHO = "mode:echo "


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
            # let the chunks above reach the client first, as tokens a real engine sent before
            # it died; then uvicorn drops the connection mid-body
            await asyncio.sleep(0.2)
            raise RuntimeError("engine crashed")
        if mode == "mode:stall":
            await asyncio.sleep(SLOW_S)
        yield _chunk("do you think?")
        yield _chunk(finish="stop")
        yield "data: [DONE]\n\n"

    return app
