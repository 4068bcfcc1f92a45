"""A client that hangs up before its stream starts must not keep its concurrency slot.

Driven at the ASGI level so the timing is exact: the engine answers, the gateway returns its
streaming response, and the client's disconnect is already waiting, so Starlette cancels the
stream before the relay's generator ever runs (its `finally` never runs either). With one slot per
caller, the next request must still be served and the in-flight gauge must be back to zero.
"""

import asyncio
import json

from server.gateway import create_app
from server.settings import Settings
from server.upstream import new_session
from testkit.asgi import http_scope


async def _call(
    app, method: str, path: str, body: bytes = b"", hang_up: bool = False
) -> list[dict]:
    inbox = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        if inbox:
            return inbox.pop(0)
        if not hang_up:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        await asyncio.sleep(0)  # a real server's send can suspend: cancellation lands here

    await app(http_scope(method, path), receive, send)
    return sent


def test_disconnect_before_first_byte_releases_the_slot(fake_engine):
    async def scenario() -> tuple[list, list, str]:
        app = create_app(
            Settings.from_env({}, engine_url=fake_engine.url, max_concurrency_per_key=1)
        )
        async with new_session() as client:
            app.state.client = client
            request = {"messages": [{"role": "user", "content": "hello"}], "stream": True}
            gone = await _call(
                app, "POST", "/v1/chat/completions", json.dumps(request).encode(), hang_up=True
            )
            served = await _call(app, "POST", "/v1/chat/completions", json.dumps(request).encode())
            metrics = await _call(app, "GET", "/metrics")
        text = b"".join(m.get("body", b"") for m in metrics).decode()
        return gone, served, text

    gone, served, metrics = asyncio.run(scenario())
    assert not any(m.get("body") for m in gone)  # cancelled before the first chunk
    assert served[0]["status"] == 200  # not 429: its slot was released
    assert b"data: [DONE]" in b"".join(m.get("body", b"") for m in served)
    assert "gateway_in_flight_requests 0.0" in metrics
    assert 'gateway_requests_total{route="/v1/chat/completions",status="499"} 1.0' in metrics
