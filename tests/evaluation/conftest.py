"""Fake OpenAI-compatible endpoints on 127.0.0.1 for the evaluation tests.

`fake_openai(reply)` starts a `testkit.fake_openai.FakeOpenAI` answering /v1/models and
/v1/chat/completions; `reply(body) -> (status, content_or_payload, delay_s)` decides each answer,
so a test can inject 500s, garbage and slow replies. Every request body is recorded.
"""

from __future__ import annotations

import pytest

from testkit.fake_openai import FakeOpenAI, Reply


@pytest.fixture
def fake_openai():
    servers: list[FakeOpenAI] = []

    def start(reply: Reply, model: str = "fake-model") -> FakeOpenAI:
        servers.append(FakeOpenAI(reply, model))
        return servers[-1]

    yield start
    for s in servers:
        s.close()
