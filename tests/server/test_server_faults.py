"""Engine faults seen through the gateway (fake engine on 127.0.0.1): engine down (503 +
Retry-After, /ready 503), slow (504), HTTP 500 (502), garbage (502 / error event), dying or
stalling mid-stream (the stream ends with an error event, no hang); after each fault the same
gateway still answers a normal request.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tutor.proc import free_port


def chat(url: str, content: str, stream: bool = False, timeout: float = 15) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": content}], "stream": stream}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=timeout)


def sse_events(resp: httpx.Response) -> list:
    return [
        line[6:] if line[6:] == "[DONE]" else json.loads(line[6:])
        for line in resp.text.splitlines()
        if line.startswith("data: ")
    ]


@pytest.fixture(scope="module")
def gateway(fake_engine, gateway_factory) -> str:
    return gateway_factory(engine_url=fake_engine.url, request_timeout_s=1.0, retry_after_s=7)


def assert_still_serves(url: str) -> None:
    resp = chat(url, "Is 7 prime?")
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "What do you think?"


def test_engine_down_gives_503_with_retry_after(gateway_factory):
    url = gateway_factory(engine_url=f"http://127.0.0.1:{free_port()}", retry_after_s=7)
    for stream in (False, True):
        resp = chat(url, "hello", stream=stream)
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "7"
        assert resp.json()["error"]["code"] == "engine_unavailable"
    ready = httpx.get(url + "/ready", timeout=10)
    assert ready.status_code == 503 and ready.headers["retry-after"] == "7"
    assert httpx.get(url + "/health").json() == {"status": "ok"}


@pytest.mark.parametrize(
    "mode, stream, status, code",
    [
        ("mode:slow", False, 504, "engine_timeout"),
        ("mode:slow", True, 504, "engine_timeout"),
        ("mode:500", False, 502, "engine_error"),
        ("mode:500", True, 502, "engine_error"),
        ("mode:garbage", False, 502, "engine_bad_response"),
    ],
)
def test_engine_failure_status(gateway, mode, stream, status, code):
    resp = chat(gateway, mode, stream=stream)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and error["type"] == "server_error" and error["message"]
    assert "CUDA" not in error["message"]  # engine internals stay out of client errors
    assert_still_serves(gateway)


@pytest.mark.parametrize(
    "mode, code",
    [
        ("mode:die", "engine_error"),
        ("mode:stall", "engine_timeout"),
        ("mode:garbage", "engine_bad_response"),
    ],
)
def test_mid_stream_failure_ends_with_error_event(gateway, mode, code):
    resp = chat(gateway, mode, stream=True, timeout=10)
    assert resp.status_code == 200  # headers were sent before the engine failed
    events = sse_events(resp)
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == code
    assert_still_serves(gateway)


def test_healthy_stream_passes_chunks_through(gateway, fake_engine):
    resp = chat(gateway, "Why?", stream=True)
    events = sse_events(resp)
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == "What do you think?"
    assert all(e["model"] == "socratic-tutor" for e in events[:-1])  # engine's name rewritten
    assert fake_engine.bodies[-1]["stream"] is True


def test_metrics_count_errors(gateway):
    chat(gateway, "mode:500")
    text = httpx.get(gateway + "/metrics").text
    assert 'gateway_engine_errors_total{code="engine_error"}' in text
    assert 'gateway_requests_total{route="/v1/chat/completions",status="502"}' in text
