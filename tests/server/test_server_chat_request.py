"""Pure request logic, no HTTP: chat normalisation (defaults, model rewrite, forwarded fields),
the system-prompt policy (keep / replace / prepend), the RunPod job input shapes, settings from
env (types, tutor.json, bad values), API key checks and the per-key limiter.
"""

from __future__ import annotations

import json

import pytest

from server.chat_request import RequestError, apply_system_prompt, normalize_chat_request
from server.limits import KeyLimiter, authenticate
from server.serverless import parse_job_input
from server.settings import Settings, SettingsError
from tutor.prompts import TUTOR_SYSTEM_PROMPT

USER = {"role": "user", "content": "What is a prime?"}


def test_normalize_inserts_prompt_and_defaults():
    out = normalize_chat_request({"messages": [USER]}, Settings())
    assert out == {
        "messages": [{"role": "system", "content": TUTOR_SYSTEM_PROMPT}, USER],
        "max_tokens": 512,
        "stream": False,
    }


def test_normalize_forwards_sampling_and_rewrites_model():
    settings = Settings(upstream_model="engine-name", served_model_name="tutor")
    body = {
        "model": "tutor", "messages": [USER], "temperature": 0, "top_p": 0.9, "seed": 3,
        "stop": "?", "max_completion_tokens": 7, "n": 1, "user": "u1", "stream": True,
        "stream_options": {"include_usage": True},
    }  # fmt: skip
    out = normalize_chat_request(body, settings)
    assert out["model"] == "engine-name" and out["max_tokens"] == 7 and out["stop"] == ["?"]
    assert out["temperature"] == 0 and out["top_p"] == 0.9 and out["seed"] == 3
    assert out["stream_options"] == {"include_usage": True}
    assert "user" not in out and "n" not in out


def test_text_parts_are_joined():
    message = {
        "role": "user",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }
    out = normalize_chat_request({"messages": [message]}, Settings())
    assert out["messages"][1] == {"role": "user", "content": "a\nb"}


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("keep", "Be brief."),
        ("replace", TUTOR_SYSTEM_PROMPT),
        ("prepend", TUTOR_SYSTEM_PROMPT + "\n\nBe brief."),
    ],
)
def test_system_prompt_policy(policy, expected):
    messages = [{"role": "system", "content": "Be brief."}, USER]
    out = apply_system_prompt(messages, TUTOR_SYSTEM_PROMPT, policy)
    assert out == [{"role": "system", "content": expected}, USER]
    assert messages[0]["content"] == "Be brief."  # the input is not modified


def test_request_error_body_is_openai_shaped():
    with pytest.raises(RequestError) as info:
        normalize_chat_request({"messages": [USER], "max_tokens": 0}, Settings())
    assert info.value.status == 400
    assert info.value.body() == {
        "error": {
            "message": "max_tokens: must be an integer >= 1",
            "type": "invalid_request_error",
            "code": "invalid_max_tokens",
            "param": "max_tokens",
        }
    }


def test_job_input_shapes():
    route, body, simple = parse_job_input(
        {"openai_route": "/v1/chat/completions", "openai_input": {"messages": [USER]}}
    )
    assert (route, body, simple) == ("/v1/chat/completions", {"messages": [USER]}, False)
    assert parse_job_input({"openai_route": "/v1/models"})[0] == "/v1/models"
    route, body, simple = parse_job_input(
        {"messages": [USER], "sampling_params": {"max_tokens": 4}, "stream": True}
    )
    assert body == {"messages": [USER], "max_tokens": 4, "stream": True} and simple


@pytest.mark.parametrize(
    "job_input, code",
    [
        ("hello", "invalid_input"),
        ({}, "invalid_input"),
        ({"openai_route": "/v1/embeddings", "openai_input": {}}, "unknown_route"),
        ({"openai_route": "/v1/chat/completions", "openai_input": []}, "invalid_input"),
        ({"messages": [USER], "sampling_params": 5}, "invalid_input"),
        ({"messages": [USER], "sampling_params": {"stream": True}}, "invalid_input"),
        ({"messages": [USER], "prompt": "x"}, "unknown_parameter"),
    ],
)
def test_bad_job_inputs(job_input, code):
    with pytest.raises(RequestError) as info:
        parse_job_input(job_input)
    assert info.value.code == code


def test_settings_from_env(tmp_path):
    (tmp_path / "tutor.json").write_text(json.dumps({"system_prompt": "Ask, never tell."}))
    env = {"MODEL": str(tmp_path), "API_KEYS": "a, b,", "MAX_TOKENS_CAP": "64", "DEFAULT_MAX_TOKENS": "32",
           "REQUEST_TIMEOUT_S": "2.5", "SYSTEM_PROMPT_POLICY": "prepend"}  # fmt: skip
    settings = Settings.from_env(env, port=9)
    assert settings.system_prompt == "Ask, never tell."
    assert settings.api_keys == ("a", "b") and settings.max_tokens_cap == 64
    assert settings.request_timeout_s == 2.5 and settings.port == 9
    assert Settings.from_env({}).system_prompt == TUTOR_SYSTEM_PROMPT


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"SYSTEM_PROMPT_POLICY": "merge"}, "SYSTEM_PROMPT_POLICY"),
        ({"MAX_MESSAGES": "many"}, "MAX_MESSAGES"),
        ({"DEFAULT_MAX_TOKENS": "5000"}, "DEFAULT_MAX_TOKENS"),
    ],
)
def test_bad_settings_name_the_variable(env, needle):
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


def test_bad_tutor_json_is_reported(tmp_path):
    (tmp_path / "tutor.json").write_text('{"system_prompt": ""}')
    with pytest.raises(SettingsError, match="tutor.json"):
        Settings.from_env({"MODEL": str(tmp_path)})


def test_authenticate():
    assert authenticate(None, ()) is None
    label = authenticate("Bearer secret-1", ("other", "secret-1"))
    assert label and "secret" not in label
    for header, code in [
        (None, "missing_api_key"),
        ("Basic x", "missing_api_key"),
        ("Bearer secret", "invalid_api_key"),
    ]:
        with pytest.raises(RequestError) as info:
            authenticate(header, ("secret-1",))
        assert info.value.status == 401 and info.value.code == code


def test_key_limiter_window_and_release():
    limiter = KeyLimiter(max_in_flight=2, per_minute=3)
    for t in (0.0, 1.0):
        limiter.acquire("k", now=t)
    with pytest.raises(RequestError, match="concurrency"):
        limiter.acquire("k", now=2.0)
    limiter.release("k")
    limiter.acquire("k", now=3.0)
    limiter.release("k")
    limiter.release("k")
    with pytest.raises(RequestError) as info:
        limiter.acquire("k", now=30.0)
    assert info.value.code == "rate_limit_exceeded" and info.value.retry_after == 30
    limiter.acquire("k", now=60.5)  # the first request left the 60 s window
