"""ASGI helpers the fake servers share: read a request body, answer JSON, serve an app in a thread.

The fakes are bare ASGI apps (no framework) so they cost far less than what they stand in front of.

    with ThreadedServer(app) as srv: ... srv.url ...   # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import json
import time
from typing import Any

from tutor.proc import ThreadedUvicorn


def http_scope(method: str, path: str) -> dict[str, Any]:
    """The ASGI scope of a JSON request from a local client, for calling an app directly."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "scheme": "http", "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def read_body(receive: Any) -> bytes:
    """The whole request body (ASGI delivers it in parts)."""
    body, more = b"", True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    return body


async def send_json(
    send: Any, status: int, payload: dict | bytes, extra: list | None = None
) -> None:
    """Answer `payload` (a dict, or JSON already encoded) with content-type and content-length."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": data})


def chat_completion(
    content: str, model: str, finish: str = "stop", *, usage: dict, id_: str
) -> dict:
    """A chat.completion body with one choice."""
    return {
        "id": id_,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": usage,
    }


def serve_until_interrupted(server: ThreadedUvicorn, banner: str) -> None:
    """`python -m testkit.fake_...`: print `banner`, serve until Ctrl-C."""
    with server as srv:
        print(banner.format(url=srv.url), flush=True)
        try:
            srv.thread.join()
        except KeyboardInterrupt:
            pass


class ThreadedServer(ThreadedUvicorn):
    """Serve a bare ASGI `app` on 127.0.0.1 in a background thread; `url` ends in /v1 (an OpenAI
    client's base URL), `base` is the server's root.

    with ThreadedServer(app) as srv: ... srv.url ...
    """

    def __init__(self, app: Any, port: int = 0, state: Any = None):
        super().__init__(app, port=port, lifespan="off", interface="asgi3")
        self.state, self.base = state, self.url
        self.url = f"{self.base}/v1"
