"""The real vLLM engine (CPU build) behind `socratic serve --engine vllm --api-key K`, serving
SmolLM2-135M-Instruct plus a LoRA adapter of rank 24 (vLLM only takes --max-lora-rank 32): the
official openai client plain, streamed with usage, with stop sequences and max_tokens; n>1 (vLLM:
yes; the gateway: 400); 401 without the key; 4xx for bad input, the engine's own 400 passed on;
the system-prompt policies and the per-key concurrency limit with real replies; the gateway's and
vLLM's /metrics; the end of turn from the model's generation_config; base and tuned as two model
names of the one engine, each behind its own gateway (`base_settings`, as `serve_base_and_tuned`).
"""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from server.launch import GatewayThread, base_settings
from server.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # the first test waits for the engine

TUTOR = "socratic-tutor"
USER = [{"role": "user", "content": "Why is 1 not a prime number?"}]
GREEDY = {"temperature": 0, "max_tokens": 48}


@pytest.fixture(scope="module")
def client(vllm_serve) -> openai.OpenAI:
    return openai.OpenAI(base_url=vllm_serve.url + "/v1", api_key=vllm_serve.key, max_retries=0)


@pytest.fixture(scope="module")
def engine_client(vllm_serve) -> openai.OpenAI:
    return openai.OpenAI(base_url=vllm_serve.engine_url + "/v1", api_key="-", max_retries=0)


@pytest.fixture(scope="module")
def greedy_reply(client) -> str:
    reply = client.chat.completions.create(model=TUTOR, messages=USER, **GREEDY)
    assert reply.choices[0].message.content.strip()
    return reply.choices[0].message.content


@pytest.fixture
def gateway(vllm_serve):
    """An extra gateway in this process in front of the session's engine, with given settings."""
    started: list[GatewayThread] = []

    def make(settings: Settings) -> str:
        thread = GatewayThread(settings)
        thread.start()
        started.append(thread)
        return f"http://127.0.0.1:{thread.port}"

    yield make
    for thread in started:
        thread.stop()


def tuned_settings(vllm_serve, **overrides) -> Settings:
    return Settings.from_env(
        {}, engine_url=vllm_serve.engine_url, upstream_model=TUTOR, port=0, **overrides
    )


def test_one_engine_serves_base_and_adapter_with_rank_24(vllm_serve, client, engine_client):
    assert [m.id for m in client.models.list()] == [TUTOR]
    assert {m.id for m in engine_client.models.list()} == {TUTOR, TUTOR + "-base"}
    # The adapter's r=24 went to vLLM as 32: 24 would have stopped it at start-up.
    assert re.search(r"'max_lora_rank': 32\b", vllm_serve.log.read_text())
    assert re.search(r"'dtype': 'float32'", vllm_serve.log.read_text())  # CPU default


def test_plain_reply_stops_at_the_end_of_turn(client, greedy_reply):
    reply = client.chat.completions.create(
        model=TUTOR, messages=USER, temperature=0, max_tokens=200
    )
    choice = reply.choices[0]
    # generation_config.json's eos (<|im_end|>) ends the turn: never generated up to max_tokens.
    assert choice.finish_reason == "stop" and reply.usage.completion_tokens < 200
    assert "<|im_end|>" not in choice.message.content
    assert choice.message.content.startswith(greedy_reply[:20])
    assert reply.model == TUTOR and reply.usage.prompt_tokens > 20  # the tutor prompt is in


def test_streamed_reply_equals_the_plain_one_and_reports_usage(client, greedy_reply):
    stream = client.chat.completions.create(
        model=TUTOR, messages=USER, stream=True, stream_options={"include_usage": True}, **GREEDY
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == greedy_reply
    assert sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) >= 3
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 48
    assert all(c.model == TUTOR for c in chunks)


def test_stop_sequence_cuts_the_reply(client, greedy_reply):
    stop = greedy_reply.split()[2]
    reply = client.chat.completions.create(model=TUTOR, messages=USER, stop=[stop], **GREEDY)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == greedy_reply.split(stop)[0]


def test_max_tokens_ends_with_length(client):
    reply = client.chat.completions.create(model=TUTOR, messages=USER, temperature=0, max_tokens=5)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 5


def test_n_above_one_in_the_engine_not_through_the_gateway(client, engine_client):
    reply = engine_client.chat.completions.create(
        model=TUTOR, messages=USER, n=3, temperature=1.0, seed=7, max_tokens=8
    )
    assert sorted(c.index for c in reply.choices) == [0, 1, 2]
    assert reply.usage.completion_tokens <= 3 * 8
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=TUTOR, messages=USER, n=2, max_tokens=8)
    assert info.value.body["code"] == "unsupported_value"


def test_api_key_is_required(vllm_serve):
    wrong = openai.OpenAI(base_url=vllm_serve.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        wrong.chat.completions.create(model=TUTOR, messages=USER, max_tokens=4)
    assert info.value.body["code"] == "invalid_api_key"
    body = {"model": TUTOR, "messages": USER, "max_tokens": 4}
    none = httpx.post(vllm_serve.url + "/v1/chat/completions", json=body, timeout=30)
    assert none.status_code == 401 and none.json()["error"]["code"] == "missing_api_key"


@pytest.mark.parametrize(
    "extra, error, code",
    [
        ({"temperature": 5}, openai.BadRequestError, "out_of_range"),
        ({"max_tokens": "cap+1"}, openai.BadRequestError, "max_tokens_too_large"),
        ({"model": "gpt-4"}, openai.NotFoundError, "model_not_found"),
        ({"extra_body": {"top_k": 5}}, openai.BadRequestError, "unknown_parameter"),
    ],
)
def test_bad_input_is_4xx(vllm_serve, client, extra, error, code):
    body = {"model": TUTOR, "messages": USER, "max_tokens": 4, **extra}
    if body["max_tokens"] == "cap+1":
        body["max_tokens"] = vllm_serve.max_tokens_cap + 1
    with pytest.raises(error) as info:
        client.chat.completions.create(**body)
    assert info.value.body["code"] == code


def test_the_engines_own_400_is_passed_on(client):
    long = [{"role": "user", "content": "tell me more " * 1000}]  # ~3000 tokens > 2048
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=TUTOR, messages=long, max_tokens=4, stream=stream)
        assert info.value.body["code"] == "engine_rejected"
        assert "2048" in info.value.body["message"]  # vLLM's own words: the context length


def test_system_prompt_policies(vllm_serve, client, gateway):
    own = [{"role": "system", "content": "Be brief."}, *USER]

    def prompt_tokens(c: openai.OpenAI, messages: list) -> tuple[int, str]:
        reply = c.chat.completions.create(model=TUTOR, messages=messages, **GREEDY)
        return reply.usage.prompt_tokens, reply.choices[0].message.content

    tutor, tutor_text = prompt_tokens(client, USER)  # no system message: the tutor prompt
    kept, _ = prompt_tokens(client, own)  # keep (the session's policy): the client's own
    assert kept < tutor
    clients = {
        policy: openai.OpenAI(
            base_url=gateway(tuned_settings(vllm_serve, system_prompt_policy=policy)) + "/v1",
            api_key="-",
            max_retries=0,
        )
        for policy in ("replace", "prepend")
    }
    assert prompt_tokens(clients["replace"], own) == (tutor, tutor_text)
    assert prompt_tokens(clients["prepend"], own)[0] > tutor


def test_concurrency_limit_per_key_with_real_replies(vllm_serve, gateway):
    url = gateway(tuned_settings(vllm_serve, max_concurrency_per_key=1))
    story = [{"role": "user", "content": "Tell me a long story about a dragon who counts."}]
    body = {"messages": story, "max_tokens": 128, "temperature": 0, "stream": True}  # seconds
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as first:
        assert first.status_code == 200
        lines = first.iter_lines()  # kept: a dropped iterator closes the connection
        next(lines)  # the first request is in flight
        second = httpx.post(url + "/v1/chat/completions", json=body, timeout=60)
        assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
        assert second.json()["error"]["code"] == "concurrency_limit_exceeded"
        assert "data: [DONE]" in list(lines)
    short = {**body, "max_tokens": 4, "stream": False}
    again = httpx.post(url + "/v1/chat/completions", json=short, timeout=60)
    assert again.status_code == 200


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match[1])


def test_metrics_of_the_gateway_and_of_vllm(vllm_serve, gateway):
    url = gateway(tuned_settings(vllm_serve))
    c = openai.OpenAI(base_url=url + "/v1", api_key="-", max_retries=0)
    stream = c.chat.completions.create(
        model=TUTOR, messages=USER, stream=True, stream_options={"include_usage": True}, **GREEDY
    )
    usage = list(stream)[-1].usage
    text = httpx.get(url + "/metrics").text
    route = 'route="/v1/chat/completions"'
    assert metric(text, f'gateway_requests_total{{{route},status="200"}}') == 1
    assert metric(text, 'gateway_tokens_total{kind="completion"}') == usage.completion_tokens
    assert metric(text, 'gateway_tokens_total{kind="prompt"}') == usage.prompt_tokens
    assert metric(text, "gateway_time_to_first_token_seconds_count") == 1
    engine = httpx.get(vllm_serve.engine_url + "/metrics").text
    generated = re.findall(r"^vllm:generation_tokens_total\{[^}]*\} (\S+)$", engine, re.M)
    assert generated and sum(map(float, generated)) >= usage.completion_tokens
    assert re.search(r'^vllm:lora_requests_info\{[^}]*max_lora="1"', engine, re.M)


def test_base_and_tuned_from_one_engine(vllm_serve, smol_run, engine_client, gateway):
    from server.engine import EngineSpec

    spec = EngineSpec(str(smol_run.base), lora_adapter=str(smol_run.adapter))
    tuned = tuned_settings(vllm_serve)
    urls = {"tuned": gateway(tuned), "base": gateway(base_settings(tuned, spec, "base"))}
    for side, engine_model in (("tuned", TUTOR), ("base", TUTOR + "-base")):
        c = openai.OpenAI(base_url=urls[side] + "/v1", api_key="-", max_retries=0)
        assert [m.id for m in c.models.list()] == [TUTOR if side == "tuned" else "base"]
        through = c.chat.completions.create(
            messages=USER, model=c.models.list().data[0].id, **GREEDY
        )
        direct = engine_client.chat.completions.create(
            model=engine_model,
            messages=[{"role": "system", "content": tuned.system_prompt}, *USER],
            **GREEDY,
        )
        assert through.choices[0].message.content == direct.choices[0].message.content
