"""An OpenAI-compatible endpoint whose every answer the test decides (evaluation tests).

`FakeOpenAI(reply)` serves /v1/models and /v1/chat/completions on 127.0.0.1;
`reply(body) -> (status, content_or_payload, delay_s)` decides each answer, so a test can inject
500s, garbage and slow replies. Every request body is recorded in `requests`.

    srv = FakeOpenAI(lambda body: (200, "What do you think?", 0)); ...; srv.close()
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from testkit.asgi import ThreadedServer, chat_completion, read_body, send_json

Reply = Callable[[dict], tuple[int, object, float]]


def completion(content: str, model: str) -> dict:
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    return {**chat_completion(content, model, usage=usage, id_="chatcmpl-test"), "created": 0}


class FakeOpenAI:
    def __init__(self, reply: Reply, model: str = "fake-model"):
        self.reply, self.model, self.requests = reply, model, []
        self._server = ThreadedServer(self._app).start()
        self.url = self._server.base

    async def _app(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            if scope["path"].rstrip("/") == "/v1/models":
                model = {"id": self.model, "object": "model", "created": 0, "owned_by": "test"}
                await send_json(send, 200, {"object": "list", "data": [model]})
            else:
                await send_json(send, 404, {"error": "not found"})
            return
        body = json.loads(await read_body(receive))
        self.requests.append(body)
        status, content, delay = self.reply(body)
        await asyncio.sleep(delay)
        if status != 200:
            await send_json(send, status, {"error": {"message": "injected failure"}})
        elif isinstance(content, dict):
            await send_json(send, 200, content)
        else:
            await send_json(send, 200, completion(str(content), body.get("model", self.model)))

    def close(self) -> None:
        self._server.stop()
