"""The chat route's plain ASGI path (server.gateway.Gateway / ChatRoute), driven at the ASGI level:
a bug inside the handler is still a logged 500 with an OpenAI-style body, other methods on the
route still get 405 from FastAPI's router, other routes still go through FastAPI, and the
streamed answer reaches the client whole."""

from __future__ import annotations

import asyncio
import json

from server import gateway
from server.gateway import create_app
from server.settings import Settings
from server.upstream import new_session
from testkit.asgi import http_scope


def _call(app, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    async def scenario() -> list[dict]:
        inbox = [{"type": "http.request", "body": json.dumps(body or {}).encode()}]
        sent: list[dict] = []

        async def receive() -> dict:
            if inbox:
                return inbox.pop(0)
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        async with new_session() as client:
            app.state.client = client
            await app(http_scope(method, path), receive, send)
        return sent

    sent = asyncio.run(scenario())
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _app(fake_engine):
    return create_app(Settings.from_env({}, engine_url=fake_engine.url))


def test_a_bug_in_the_handler_is_a_500_with_an_openai_body(fake_engine, monkeypatch) -> None:
    async def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(gateway, "handle_chat", broken)
    status, body = _call(_app(fake_engine), "POST", gateway.CHAT_ROUTE, {"messages": []})
    assert status == 500
    assert json.loads(body)["error"]["code"] == "internal_error"


def test_other_methods_and_routes_still_go_through_fastapi(fake_engine) -> None:
    app = _app(fake_engine)
    status, body = _call(app, "GET", gateway.CHAT_ROUTE)
    assert status == 405 and json.loads(body)["error"]["code"] == "method_not_allowed"
    assert _call(app, "GET", "/health") == (200, b'{"status":"ok"}')


def test_streamed_answer_arrives_whole(fake_engine) -> None:
    request = {"messages": [{"role": "user", "content": "hello"}], "stream": True}
    status, body = _call(_app(fake_engine), "POST", gateway.CHAT_ROUTE, request)
    events = [e for e in body.decode().split("\n\n") if e]
    assert status == 200 and events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(c["model"] == "socratic-tutor" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
