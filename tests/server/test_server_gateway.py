"""The official openai client against the gateway in front of a real `transformers serve` running
the tiny model: non-streaming and streaming (same greedy text, chunk by chunk), multi-turn, the
tutor system prompt reaching the engine (its prompt token count equals the chat template with the
prompt), /v1/models, /ready and /metrics.
"""

from __future__ import annotations

import httpx
import pytest
from openai import OpenAI

from tutor.prompts import TUTOR_SYSTEM_PROMPT

QUESTION = [{"role": "user", "content": "Why do objects fall at the same speed?"}]


@pytest.fixture(scope="module")
def client(real_stack) -> OpenAI:
    return OpenAI(base_url=real_stack.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def tokenizer(tiny_base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base)


def prompt_tokens(tokenizer, messages: list[dict]) -> int:
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return len(ids["input_ids"])


def test_non_streaming(client, tokenizer):
    resp = client.chat.completions.create(model="socratic-tutor", messages=QUESTION, max_tokens=8)
    assert resp.model == "socratic-tutor"
    assert resp.choices[0].message.role == "assistant" and resp.choices[0].message.content
    assert resp.choices[0].finish_reason in ("stop", "length")
    assert resp.usage.completion_tokens <= 8
    system = [{"role": "system", "content": TUTOR_SYSTEM_PROMPT}]
    assert resp.usage.prompt_tokens == prompt_tokens(tokenizer, system + QUESTION)


def test_streaming_relays_the_engine_chunks(client, real_stack, tiny_base):
    full = client.chat.completions.create(model="socratic-tutor", messages=QUESTION, max_tokens=8)
    chunks = list(
        client.chat.completions.create(
            messages=QUESTION, model="socratic-tutor", max_tokens=8, stream=True
        )
    )
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 2  # passed through chunk by chunk, not as one block
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert all(c.model == "socratic-tutor" for c in chunks)
    # greedy decoding: the same answer (transformers serve strips non-streamed content)
    assert "".join(pieces).strip() == full.choices[0].message.content.strip()
    # exactly the engine's own stream for the same request (with the tutor prompt it received)
    direct = OpenAI(base_url=real_stack.settings.engine_url + "/v1", api_key="-", max_retries=0)
    system = [{"role": "system", "content": TUTOR_SYSTEM_PROMPT}]
    engine_chunks = direct.chat.completions.create(
        messages=system + QUESTION, model=str(tiny_base), max_tokens=8, stream=True
    )
    assert pieces == [
        c.choices[0].delta.content
        for c in engine_chunks
        if c.choices and c.choices[0].delta.content
    ]


def test_multi_turn_and_client_system_prompt(client, tokenizer):
    turns = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "What do you get if you count two more from two?"},
        {"role": "user", "content": "Four?"},
    ]
    resp = client.chat.completions.create(model="socratic-tutor", messages=turns, max_tokens=4)
    # default policy `keep`: the client's system message reaches the engine unchanged
    assert resp.usage.prompt_tokens == prompt_tokens(tokenizer, turns)
    resp = client.chat.completions.create(model="socratic-tutor", messages=turns[1:], max_tokens=4)
    tutor = [{"role": "system", "content": TUTOR_SYSTEM_PROMPT}]
    assert resp.usage.prompt_tokens == prompt_tokens(tokenizer, tutor + turns[1:])


def test_models_ready_metrics(client, real_stack):
    assert [m.id for m in client.models.list().data] == ["socratic-tutor"]
    assert httpx.get(real_stack.url + "/ready").json()["status"] == "ready"
    metrics = httpx.get(real_stack.url + "/metrics").text
    assert 'gateway_requests_total{route="/v1/chat/completions",status="200"}' in metrics
    assert "gateway_tokens_total" in metrics and "gateway_time_to_first_token_seconds" in metrics
