"""Malformed requests through the real gateway (fake engine behind it): each gets its 4xx with an
OpenAI-style error body and never reaches the engine; API keys (missing, wrong, right) and the
per-key concurrency and rate limits; unknown routes and methods.
"""

from __future__ import annotations

import threading

import httpx
import pytest

USER = [{"role": "user", "content": "Why is the sky blue?"}]
BAD_REQUESTS = [
    # (id, body or raw bytes, status, code)
    ("bad-json", b'{"messages": [', 400, "invalid_json"),
    ("not-utf8", b"\xff\xfe\x00", 400, "invalid_json"),
    ("body-is-list", [1, 2], 400, "invalid_body"),
    ("missing-messages", {"max_tokens": 5}, 400, "missing_messages"),
    ("messages-not-list", {"messages": "hi"}, 400, "invalid_messages"),
    ("messages-empty", {"messages": []}, 400, "invalid_messages"),
    ("message-not-object", {"messages": ["hi"]}, 400, "invalid_message"),
    ("unknown-role", {"messages": [{"role": "bot", "content": "hi"}]}, 400, "invalid_role"),
    ("missing-role", {"messages": [{"content": "hi"}]}, 400, "invalid_role"),
    ("late-system", {"messages": [*USER, {"role": "system", "content": "x"}]}, 400, "invalid_role"),
    ("content-number", {"messages": [{"role": "user", "content": 42}]}, 400, "invalid_content"),
    (
        "content-image",
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        400,
        "invalid_content",
    ),
    (
        "message-extra-field",
        {"messages": [{"role": "user", "content": "a", "tool_calls": []}]},
        400,
        "invalid_message",
    ),
    ("negative-max-tokens", {"messages": USER, "max_tokens": -1}, 400, "invalid_max_tokens"),
    ("string-max-tokens", {"messages": USER, "max_tokens": "10"}, 400, "invalid_max_tokens"),
    ("bool-max-tokens", {"messages": USER, "max_tokens": True}, 400, "invalid_max_tokens"),
    ("max-tokens-over-cap", {"messages": USER, "max_tokens": 100_000}, 400, "max_tokens_too_large"),
    ("temperature-high", {"messages": USER, "temperature": 3}, 400, "out_of_range"),
    ("top-p-zero", {"messages": USER, "top_p": 0}, 400, "out_of_range"),
    (
        "temperature-nan",
        b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
        400,
        "out_of_range",
    ),  # fmt: skip
    (
        "top-p-infinity",
        b'{"messages": [{"role": "user", "content": "hi"}], "top_p": Infinity}',
        400,
        "out_of_range",
    ),  # fmt: skip
    ("temperature-string", {"messages": USER, "temperature": "hot"}, 400, "invalid_type"),
    ("stream-string", {"messages": USER, "stream": "yes"}, 400, "invalid_type"),
    ("stop-too-many", {"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, 400, "invalid_stop"),
    ("n-two", {"messages": USER, "n": 2}, 400, "unsupported_value"),
    ("unknown-field", {"messages": USER, "tools": []}, 400, "unknown_parameter"),
    ("wrong-model", {"messages": USER, "model": "gpt-4o"}, 404, "model_not_found"),
    ("model-number", {"messages": USER, "model": 3}, 400, "invalid_type"),
    ("too-many-messages", {"messages": USER * 9}, 400, "too_many_messages"),
    (
        "too-many-chars",
        {"messages": [{"role": "user", "content": "x" * 3001}]},
        400,
        "context_length_exceeded",
    ),
    (
        "huge-body",
        {"messages": [{"role": "user", "content": "x" * 20_000}]},
        413,
        "request_too_large",
    ),
]


@pytest.fixture(scope="module")
def gateway(fake_engine, gateway_factory) -> str:
    return gateway_factory(
        engine_url=fake_engine.url, max_messages=8, max_chars=3000, max_body_bytes=10_000
    )


@pytest.mark.parametrize(
    "body, status, code", [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS]
)
def test_malformed_request_gets_its_4xx(gateway, fake_engine, body, status, code):
    seen = len(fake_engine.bodies)
    url = gateway + "/v1/chat/completions"
    if isinstance(body, bytes):
        resp = httpx.post(url, content=body, headers={"content-type": "application/json"})
    else:
        resp = httpx.post(url, json=body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    assert isinstance(error["message"], str) and "\n" not in error["message"]
    assert len(fake_engine.bodies) == seen  # rejected before the engine


def test_valid_request_after_the_bad_ones(gateway):
    resp = httpx.post(
        gateway + "/v1/chat/completions", json={"messages": USER, "model": "socratic-tutor"}
    )
    assert resp.status_code == 200 and resp.json()["model"] == "socratic-tutor"


def test_unknown_route_and_method(gateway):
    resp = httpx.get(gateway + "/v1/completions")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    resp = httpx.get(gateway + "/v1/chat/completions")
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"


def test_api_keys(fake_engine, gateway_factory):
    url = gateway_factory(engine_url=fake_engine.url, api_keys=("k-alpha", "k-beta"))
    chat = url + "/v1/chat/completions"
    missing = httpx.post(chat, json={"messages": USER})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    wrong = httpx.post(chat, json={"messages": USER}, headers={"Authorization": "Bearer k-alph"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert wrong.json()["error"]["type"] == "authentication_error"
    ok = httpx.post(chat, json={"messages": USER}, headers={"Authorization": "Bearer k-beta"})
    assert ok.status_code == 200
    assert httpx.get(url + "/v1/models").status_code == 401
    assert httpx.get(url + "/health").status_code == 200  # probes need no key


def test_rate_limit_per_key(fake_engine, gateway_factory):
    url = gateway_factory(engine_url=fake_engine.url, api_keys=("a", "b"), rate_limit_per_minute=2)
    post = lambda key: httpx.post(  # noqa: E731
        url + "/v1/chat/completions",
        json={"messages": USER},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert [post("a").status_code for _ in range(3)] == [200, 200, 429]
    limited = post("a")
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(limited.headers["retry-after"]) >= 1
    assert post("b").status_code == 200  # another key has its own budget


def test_concurrency_limit_per_key(fake_engine, gateway_factory):
    url = gateway_factory(engine_url=fake_engine.url, max_concurrency_per_key=1)
    slow = {"messages": [{"role": "user", "content": "mode:slow"}]}
    results, seen = {}, len(fake_engine.bodies)
    first = threading.Thread(
        target=lambda: results.update(
            slow=httpx.post(url + "/v1/chat/completions", json=slow, timeout=30)
        )
    )
    first.start()
    for _ in range(100):  # wait until the slow request is in flight at the engine
        if len(fake_engine.bodies) > seen:
            break
        threading.Event().wait(0.05)
    second = httpx.post(url + "/v1/chat/completions", json={"messages": USER})
    first.join()
    assert (
        second.status_code == 429 and second.json()["error"]["code"] == "concurrency_limit_exceeded"
    )
    assert results["slow"].status_code == 200
    assert httpx.post(url + "/v1/chat/completions", json={"messages": USER}).status_code == 200
