"""A fast fake OpenAI-compatible upstream for benchmarks: fixed latency, N streamed chunks.

A bare ASGI app under uvicorn (no framework), so the fake costs far less than what it measures.

    python -m testkit.fast_upstream --port 8900 --latency-ms 20 --chunks 16

`/v1/chat/completions` sleeps `latency` in total (spread over the chunks when streaming) and
answers with `content` (default: a short tutor question) or, with `--content-file`, the file's text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from testkit.asgi import chat_completion, read_body, send_json

DEFAULT_CONTENT = "What do you already know about this problem, and where would you start?"


def make_app(latency_s: float, chunks: int, content: str = DEFAULT_CONTENT, model: str = "fake"):
    """Return the ASGI app: /v1/chat/completions (stream or not), /v1/models, /health."""
    pieces = _split(content, chunks)
    models = json.dumps(
        {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "bench"}]}
    ).encode()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        path = scope["path"]
        if path == "/v1/chat/completions" and scope["method"] == "POST":
            body = json.loads(await read_body(receive) or b"{}")
            if body.get("stream"):
                await _stream(send, pieces, latency_s, model)
            else:
                await asyncio.sleep(latency_s)
                await send_json(send, 200, _completion(content, model))
        elif path == "/v1/models":
            await send_json(send, 200, models)
        elif path == "/health":
            await send_json(send, 200, b"{}")
        else:
            await send_json(send, 404, b'{"error": {"message": "not found", "type": "not_found"}}')

    return app


def _split(text: str, n: int) -> list[str]:
    step = max(1, -(-len(text) // max(1, n)))
    return [text[i : i + step] for i in range(0, len(text), step)][:n] or [text]


def _completion(content: str, model: str) -> bytes:
    usage = {"prompt_tokens": 20, "completion_tokens": 16, "total_tokens": 36}
    return json.dumps(chat_completion(content, model, usage=usage, id_="chatcmpl-bench")).encode()


async def _stream(send: Any, pieces: list[str], latency_s: float, model: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    gap = latency_s / len(pieces)
    for i, piece in enumerate(pieces):
        await asyncio.sleep(gap)
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        finish = "stop" if i == len(pieces) - 1 else None
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "model": model,
            # as vLLM: finish_reason on the last content chunk
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + json.dumps(chunk).encode() + b"\n\n",
                "more_body": True,
            }
        )
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def main() -> None:
    p = argparse.ArgumentParser(description="Fake OpenAI-compatible upstream with fixed latency.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8900, help="port (default: 8900)")
    p.add_argument(
        "--latency-ms", type=float, default=20.0, help="total response time in ms (default: 20)"
    )
    p.add_argument(
        "--chunks", type=int, default=16, help="streamed chunks per response (default: 16)"
    )
    p.add_argument(
        "--content-file",
        default=None,
        help="answer with this file's text (default: a short question)",
    )
    args = p.parse_args()
    import uvicorn

    content = (
        open(args.content_file, encoding="utf-8").read() if args.content_file else DEFAULT_CONTENT
    )
    app = make_app(args.latency_ms / 1000, args.chunks, content)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="off"
    )


if __name__ == "__main__":
    main()
