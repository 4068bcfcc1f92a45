"""Fake OpenAI-compatible endpoints on 127.0.0.1 for the evaluation tests.

`fake_openai(reply)` starts a threaded HTTP server answering /v1/models and
/v1/chat/completions; `reply(body) -> (status, content_or_payload, delay_s)` decides each answer,
so a test can inject 500s, garbage and slow replies. Every request body is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

Reply = Callable[[dict], tuple[int, object, float]]


class FakeOpenAI:
    def __init__(self, reply: Reply, model: str = "fake-model"):
        self.reply, self.model, self.requests = reply, model, []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": fake.model,
                               "object": "model", "created": 0, "owned_by": "test"}]})  # fmt: skip
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                status, content, delay = fake.reply(body)
                time.sleep(delay)
                if status != 200:
                    self._send(status, {"error": {"message": "injected failure"}})
                elif isinstance(content, dict):
                    self._send(200, content)
                else:
                    self._send(200, completion(str(content), body.get("model", fake.model)))

            def _send(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def completion(content: str, model: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],  # fmt: skip
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@pytest.fixture
def fake_openai():
    servers: list[FakeOpenAI] = []

    def start(reply: Reply, model: str = "fake-model") -> FakeOpenAI:
        servers.append(FakeOpenAI(reply, model))
        return servers[-1]

    yield start
    for s in servers:
        s.close()
