"""Chat request normalisation: one pure function shared by the gateway and the RunPod handler.

    body = normalize_chat_request(raw_json, settings)   # the dict to send to the engine
    # raises RequestError(status, message, code, param) -> an OpenAI-style 4xx error body

It checks types, roles, counts and sizes, applies the tutor system-prompt policy, fills in a
default `max_tokens`, and rewrites `model` to the engine's name. No HTTP in here.
"""

from __future__ import annotations

import math
from typing import Any

from server.settings import Settings
from tutor.errors import UserError

ROLES = ("system", "user", "assistant")
# Forwarded to the engine when present. `n` (only 1) and `user` are accepted and dropped.
SAMPLING_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "stop")
ACCEPTED_FIELDS = frozenset(
    {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens"}
    | set(SAMPLING_FIELDS)
    | {"n", "user"}
)
MESSAGE_FIELDS = frozenset({"role", "content", "name"})
# name -> (low, high, low inclusive): the OpenAI ranges
RANGES = {
    "temperature": (0.0, 2.0, True),
    "top_p": (0.0, 1.0, False),
    "presence_penalty": (-2.0, 2.0, True),
    "frequency_penalty": (-2.0, 2.0, True),
}


class RequestError(UserError):
    """A client error: HTTP status, one-line message, machine-readable code and offending field."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        param: str | None = None,
        type_: str = "invalid_request_error",
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type_

    def body(self) -> dict[str, Any]:
        """The OpenAI error body: {"error": {"message", "type", "code", "param"}}."""
        return error_body(self.message, self.type, self.code, self.param)


def error_body(message: str, type_: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def normalize_chat_request(body: Any, settings: Settings) -> dict[str, Any]:
    """Validate an OpenAI chat-completions body and return the engine's request body."""
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object", "invalid_body")
    for key in body:
        if key not in ACCEPTED_FIELDS:
            raise RequestError(400, f"unsupported parameter: {key!r}", "unknown_parameter", key)
    _check_model(body.get("model"), settings)
    messages = _check_messages(body.get("messages"), settings)
    out: dict[str, Any] = {
        "messages": apply_system_prompt(
            messages, settings.system_prompt, settings.system_prompt_policy
        ),
        "max_tokens": _check_max_tokens(body, settings),
        "stream": _check_bool(body, "stream", False),
    }
    if settings.upstream_model is not None:
        out["model"] = settings.upstream_model
    for name in SAMPLING_FIELDS:
        if body.get(name) is not None:
            out[name] = _check_sampling(name, body[name])
    if body.get("n") is not None and (not _is_int(body["n"]) or body["n"] != 1):
        raise RequestError(400, "n: only n=1 is supported", "unsupported_value", "n")
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise RequestError(400, "user: must be a string", "invalid_type", "user")
    if body.get("stream_options") is not None:
        out["stream_options"] = _check_stream_options(body["stream_options"], out["stream"])
    return out


def apply_system_prompt(messages: list[dict], prompt: str, policy: str) -> list[dict]:
    """Insert the tutor prompt when there is no system message; otherwise keep the client's,
    replace it with the tutor prompt, or prepend the tutor prompt to it."""
    tutor = {"role": "system", "content": prompt}
    if not messages or messages[0]["role"] != "system":
        return [tutor, *messages]
    if policy == "keep":
        return list(messages)
    if policy == "replace":
        return [tutor, *messages[1:]]
    if policy == "prepend":
        merged = f"{prompt}\n\n{messages[0]['content']}"
        return [{"role": "system", "content": merged}, *messages[1:]]
    raise ValueError(f"unknown system prompt policy {policy!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_model(model: Any, settings: Settings) -> None:
    if model is None:
        return
    if not isinstance(model, str):
        raise RequestError(400, "model: must be a string", "invalid_type", "model")
    if model != settings.served_model_name:
        raise RequestError(
            404,
            f"model {model!r} does not exist; this server serves {settings.served_model_name!r}",
            "model_not_found",
            "model",
        )


def _check_messages(raw: Any, settings: Settings) -> list[dict[str, str]]:
    if raw is None:
        raise RequestError(400, "messages: required", "missing_messages", "messages")
    if not isinstance(raw, list) or not raw:
        raise RequestError(
            400, "messages: must be a non-empty list", "invalid_messages", "messages"
        )
    if len(raw) > settings.max_messages:
        raise RequestError(
            400,
            f"messages: {len(raw)} messages, at most {settings.max_messages} allowed",
            "too_many_messages",
            "messages",
        )
    messages = [_check_message(i, m) for i, m in enumerate(raw)]
    chars = sum(len(m["content"]) for m in messages)
    if chars > settings.max_chars:
        raise RequestError(
            400,
            f"messages: {chars} characters, at most {settings.max_chars} allowed",
            "context_length_exceeded",
            "messages",
        )
    return messages


def _check_message(i: int, message: Any) -> dict[str, str]:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise RequestError(400, f"{where}: must be an object", "invalid_message", where)
    for key in message:
        if key not in MESSAGE_FIELDS:
            raise RequestError(400, f"{where}: unsupported field {key!r}", "invalid_message", where)
    role = message.get("role")
    if role not in ROLES:
        raise RequestError(
            400, f"{where}.role: {role!r} is not one of {ROLES}", "invalid_role", f"{where}.role"
        )
    if role == "system" and i != 0:
        raise RequestError(
            400, f"{where}: a system message may only come first", "invalid_role", f"{where}.role"
        )
    return {"role": role, "content": _content_text(message.get("content"), f"{where}.content")}


def _content_text(content: Any, where: str) -> str:
    """A string, or a list of {"type": "text", "text": str} parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise RequestError(
                    400, f"{where}: only text parts are supported", "invalid_content", where
                )
            if not isinstance(part.get("text"), str):
                raise RequestError(
                    400, f"{where}: text part without a string", "invalid_content", where
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise RequestError(
        400, f"{where}: must be a string or a list of text parts", "invalid_content", where
    )


def _check_bool(body: dict, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(400, f"{name}: must be true or false", "invalid_type", name)
    return value


def _check_max_tokens(body: dict, settings: Settings) -> int:
    name = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    value = body.get(name)
    if value is None:
        return settings.default_max_tokens
    if not _is_int(value) or value < 1:
        raise RequestError(400, f"{name}: must be an integer >= 1", "invalid_max_tokens", name)
    if value > settings.max_tokens_cap:
        raise RequestError(
            400,
            f"{name}: {value} exceeds this server's cap of {settings.max_tokens_cap}",
            "max_tokens_too_large",
            name,
        )
    return value


def _check_sampling(name: str, value: Any) -> Any:
    if name == "seed":
        if not _is_int(value):
            raise RequestError(400, "seed: must be an integer", "invalid_type", name)
        return value
    if name == "stop":
        stops = [value] if isinstance(value, str) else value
        if not (
            isinstance(stops, list)
            and len(stops) <= 4
            and all(isinstance(s, str) and s for s in stops)
        ):
            raise RequestError(
                400, "stop: a string or a list of at most 4 strings", "invalid_stop", name
            )
        return stops
    low, high, low_inclusive = RANGES[name]
    if not _is_number(value):
        raise RequestError(400, f"{name}: must be a number", "invalid_type", name)
    # NaN compares False with everything and inf overflows engines: neither is in any range.
    if (
        not math.isfinite(value)
        or value > high
        or value < low
        or (value == low and not low_inclusive)
    ):
        bracket = "[" if low_inclusive else "("
        raise RequestError(400, f"{name}: must be in {bracket}{low}, {high}]", "out_of_range", name)
    return value


def _check_stream_options(value: Any, stream: bool) -> dict[str, bool]:
    if not stream:
        raise RequestError(
            400, "stream_options: only allowed with stream=true", "invalid_value", "stream_options"
        )
    if not isinstance(value, dict) or set(value) - {"include_usage"}:
        raise RequestError(
            400, "stream_options: only {'include_usage': bool}", "invalid_value", "stream_options"
        )
    include = value.get("include_usage", False)
    if not isinstance(include, bool):
        raise RequestError(
            400, "stream_options.include_usage: must be a boolean", "invalid_type", "stream_options"
        )
    return {"include_usage": include}


def models_list(settings: Settings) -> dict[str, Any]:
    """The `/v1/models` answer: the one served model (gateway and serverless handler)."""
    model = {
        "id": settings.served_model_name,
        "object": "model",
        "created": 0,
        "owned_by": "socratic-tutor",
    }
    return {"object": "list", "data": [model]}
