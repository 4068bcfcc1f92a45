"""ASGI helpers the fake servers share: read a request body, answer JSON, serve an app in a thread.

The fakes are bare ASGI apps (no framework) so they cost far less than what they stand in front of.

    with ThreadedServer(app) as srv: ... srv.url ...   # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any


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


class ThreadedServer:
    """Serve an ASGI `app` with uvicorn on 127.0.0.1 in a background thread.

    with ThreadedServer(app) as srv: ... srv.url ...
    """

    def __init__(self, app: Any, port: int = 0, state: Any = None):
        import socket

        import uvicorn

        self.state = state
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", interface="asgi3"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake server did not start within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
