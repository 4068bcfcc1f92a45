"""RunPod serverless job logic: turn a job's input into engine requests and yield the outputs.
`handler.py` at the repository root wires this to `runpod.serverless.start`.

Two input shapes:
  {"openai_route": "/v1/chat/completions", "openai_input": {...OpenAI body...}}   (also /v1/models)
      -> yields the ChatCompletion dict, or (stream=true) the SSE text "data: {...}\\n\\n" per chunk
  {"messages": [...], "sampling_params": {"max_tokens": 64, ...}, "stream": false}
      -> yields {"choices": [{"tokens": [text], "finish_reason"}], "usage": {"input", "output"}},
         one per chunk when streaming
Errors yield one {"error": "<JSON text>"} and end the job; nothing raises. The JSON text is an
object {"message", "type", "code", "status"}: runpod-python turns a yielded error into `str()` of
it and fails the job with that string (rp_job.handle_job), so a dict would reach clients as a
Python repr; a JSON string reaches them unchanged and parses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from server import upstream
from server.chat_request import RequestError, models_list, normalize_chat_request
from server.observability import log_event
from server.settings import Settings

CHAT_ROUTE, MODELS_ROUTE = "/v1/chat/completions", "/v1/models"
SIMPLE_FIELDS = frozenset({"messages", "sampling_params", "stream", "model"})


def parse_job_input(job_input: Any) -> tuple[str, dict[str, Any] | None, bool]:
    """(route, OpenAI chat body or None, simple shape?) for either input shape."""
    if not isinstance(job_input, dict):
        raise RequestError(400, "input must be a JSON object", "invalid_input")
    if "openai_route" in job_input:
        route = job_input["openai_route"]
        if route == MODELS_ROUTE:
            return MODELS_ROUTE, None, False
        if route != CHAT_ROUTE:
            raise RequestError(
                404, f"openai_route {route!r} is not served", "unknown_route", "openai_route"
            )
        body = job_input.get("openai_input")
        if not isinstance(body, dict):
            raise RequestError(
                400, "openai_input must be a JSON object", "invalid_input", "openai_input"
            )
        return CHAT_ROUTE, body, False
    if "messages" not in job_input:
        raise RequestError(
            400, "input needs openai_route + openai_input, or messages", "invalid_input", "input"
        )
    unknown = sorted(set(job_input) - SIMPLE_FIELDS)
    if unknown:
        raise RequestError(
            400, f"unsupported input field {unknown[0]!r}", "unknown_parameter", unknown[0]
        )
    params = job_input.get("sampling_params") or {}
    if not isinstance(params, dict):
        raise RequestError(
            400, "sampling_params must be a JSON object", "invalid_input", "sampling_params"
        )
    clash = {"messages", "stream", "model"} & set(params)
    if clash:
        raise RequestError(
            400,
            f"sampling_params may not set {sorted(clash)[0]!r}",
            "invalid_input",
            "sampling_params",
        )
    body = {"messages": job_input["messages"], **params}
    for key in ("stream", "model"):
        if key in job_input:
            body[key] = job_input[key]
    return CHAT_ROUTE, body, True


def job_error(status: int, message: str, code: str, type_: str) -> dict[str, str]:
    """The job's error output: its `error` is JSON text (see the module doc for why)."""
    body = {"message": message, "type": type_, "code": code, "status": status}
    return {"error": json.dumps(body)}


def simple_output(
    text: str, finish: str | None, usage: tuple[int | None, int | None]
) -> dict[str, Any]:
    out: dict[str, Any] = {"choices": [{"tokens": [text], "finish_reason": finish}]}
    if usage[1] is not None:
        out["usage"] = {"input": usage[0], "output": usage[1]}
    return out


async def handle_job(
    job_input: Any, settings: Settings, client: aiohttp.ClientSession
) -> AsyncIterator[Any]:
    """The async generator behind the RunPod handler: outputs as described in the module doc."""
    try:
        route, body, simple = parse_job_input(job_input)
        if route == MODELS_ROUTE:
            yield models_list(settings)
            return
        request = normalize_chat_request(body, settings)
        if not request["stream"]:
            data = await upstream.complete(client, settings, request)
            data["model"] = settings.served_model_name
            if simple:
                choice = data["choices"][0]
                text = (choice.get("message") or {}).get("content") or ""
                data = simple_output(text, choice.get("finish_reason"), upstream.usage_of(data))
            yield data
            return
        resp = await upstream.open_stream(client, settings, request)
        async for batch in upstream.iter_batches(resp, settings):
            for chunk, raw in batch:
                if simple:
                    yield _simple_chunk(chunk)
                else:
                    raw = upstream.with_model(raw, chunk, settings.served_model_name)
                    yield f"data: {raw.decode()}\n\n"
        if not simple:
            yield "data: [DONE]\n\n"
    except RequestError as e:
        yield job_error(e.status, e.message, e.code, e.type)
    except upstream.UpstreamError as e:
        yield job_error(e.status, e.message, e.code, "server_error")
    except Exception as e:  # a job must never take the worker down
        log_event("job_failed", logging.ERROR, error=type(e).__name__)
        yield job_error(
            500, f"internal error ({type(e).__name__})", "internal_error", "server_error"
        )


def _simple_chunk(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = chunk.get("choices") or [{}]
    finish = choices[0].get("finish_reason") if isinstance(choices[0], dict) else None
    return simple_output(upstream.chunk_text(chunk), finish, upstream.usage_of(chunk))
