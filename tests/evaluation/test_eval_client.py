"""evaluation.client.Chat on the shared retrying client (tutor.openai_client): the sampling
settings and JSON mode are sent as given, a reply without content is retried, a bad key fails at
once (no retry), and many failed replies in a row never stop a run (no circuit breaker)."""

from __future__ import annotations

import asyncio

import pytest

from evaluation.client import CallFailed, Chat, Sampling

NO_CONTENT = {
    "id": "chatcmpl-test",
    "object": "chat.completion",
    "created": 0,
    "model": "fake-model",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}
    ],
}
MESSAGES = [{"role": "user", "content": "2+2?"}]


def complete(chat: Chat, sampling: Sampling | None = None, **kw) -> str:
    async def go() -> str:
        try:
            return await chat.complete(MESSAGES, sampling or Sampling(), **kw)
        finally:
            await chat.close()

    return asyncio.run(go())


def test_sends_sampling_and_json_mode_and_retries_a_reply_without_content(fake_openai) -> None:
    calls = {"n": 0}

    def reply(body):
        calls["n"] += 1
        return (200, NO_CONTENT if calls["n"] == 1 else '{"ok": 1}', 0)

    srv = fake_openai(reply)
    sampling = Sampling(temperature=0.3, top_p=0.9, max_tokens=12, seed=7)
    assert complete(Chat(srv.url, retries=1), sampling, json_mode=True) == '{"ok": 1}'
    assert len(srv.requests) == 2
    sent = srv.requests[-1]
    assert sent["model"] == "fake-model" and sent["response_format"] == {"type": "json_object"}
    assert [sent[k] for k in ("temperature", "top_p", "max_tokens", "seed")] == [0.3, 0.9, 12, 7]


def test_no_content_after_every_retry_is_a_failure(fake_openai) -> None:
    srv = fake_openai(lambda body: (200, NO_CONTENT, 0))
    with pytest.raises(CallFailed, match="2 attempts failed; last: ValueError: the response has"):
        complete(Chat(srv.url, retries=1))


def test_a_bad_key_fails_at_once(fake_openai) -> None:
    srv = fake_openai(lambda body: (401, None, 0))
    with pytest.raises(CallFailed, match=r"/v1: 1 attempts failed; last: AuthenticationError"):
        complete(Chat(srv.url, "m", retries=3))
    assert len(srv.requests) == 1


def test_failures_in_a_row_never_stop_the_run(fake_openai) -> None:
    srv = fake_openai(lambda body: (500, None, 0))

    async def go() -> list[str]:
        chat = Chat(srv.url, "m", retries=0)
        out = []
        for _ in range(12):  # more than the generator's default breaker (10)
            try:
                await chat.complete(MESSAGES, Sampling())
            except CallFailed as e:
                out.append(str(e))
        await chat.close()
        return out

    errors = asyncio.run(go())
    assert len(errors) == 12 and all("1 attempts failed" in e for e in errors)
    assert "InternalServerError" in errors[-1]
