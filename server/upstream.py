"""The engine client: one chat request to the OpenAI-compatible engine, as JSON or as parsed SSE
chunks, with every failure mapped to an `UpstreamError` carrying the status the client should see.

    data = await complete(client, settings, body)          # non-streaming
    resp = await open_stream(client, settings, body)       # raises before any byte is sent
    async for chunk in iter_chunks(resp): ...              # raises UpstreamError mid-stream

Fault semantics: engine unreachable or not ready -> 503 (with Retry-After); engine silent longer
than REQUEST_TIMEOUT_S -> 504; engine 5xx, invalid JSON or a broken stream -> 502; engine 4xx ->
the same 4xx with an OpenAI-style body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from server.requests import error_body
from server.settings import Settings

MAX_ERROR_BYTES = 65_536  # read at most this much of an engine's error body


class UpstreamError(Exception):
    """The engine failed; `status` is what the gateway answers (or reports in the stream)."""

    def __init__(self, status: int, message: str, code: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return error_body(self.message, kind, self.code)


def chat_url(settings: Settings) -> str:
    return settings.engine_url.rstrip("/") + "/v1/chat/completions"


def timeout(settings: Settings) -> httpx.Timeout:
    """Read timeout = how long the engine may stay silent, before the answer or between chunks."""
    return httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s)


def _transport_error(e: Exception, settings: Settings, mid_stream: bool = False) -> UpstreamError:
    if isinstance(e, httpx.ConnectError | httpx.ConnectTimeout) and not mid_stream:
        return UpstreamError(
            503, "the engine is not reachable", "engine_unavailable", settings.retry_after_s
        )
    if isinstance(e, httpx.TimeoutException):
        where = " mid-stream" if mid_stream else ""
        return UpstreamError(
            504,
            f"the engine did not answer within {settings.request_timeout_s:g} s{where}",
            "engine_timeout",
        )
    where = "mid-stream" if mid_stream else "before answering"
    return UpstreamError(502, f"the engine connection failed {where}", "engine_error")


def _status_error(status: int, raw: bytes, settings: Settings) -> UpstreamError:
    """Map an engine's non-200 answer; 4xx keep their status and message."""
    if status == 503:
        return UpstreamError(
            503, "the engine is not ready", "engine_unavailable", settings.retry_after_s
        )
    if status >= 500 or status < 400:
        return UpstreamError(502, f"the engine failed with HTTP {status}", "engine_error")
    return UpstreamError(
        status, _engine_message(raw) or f"engine rejected the request ({status})", "engine_rejected"
    )


def _engine_message(raw: bytes) -> str | None:
    """The message in vLLM's {"error": {...}} / {"message"} or transformers' {"detail"} bodies."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if isinstance(err, dict):
        err = err.get("message")
    message = err or data.get("message") or data.get("detail")
    return str(message)[:500] if message else None


async def complete(
    client: httpx.AsyncClient, settings: Settings, body: dict, request_id: str | None = None
) -> dict[str, Any]:
    """One non-streaming completion; returns the engine's ChatCompletion dict."""
    headers = {"X-Request-ID": request_id} if request_id else None
    try:
        resp = await client.post(
            chat_url(settings), json=body, headers=headers, timeout=timeout(settings)
        )
    except httpx.HTTPError as e:
        raise _transport_error(e, settings) from None
    if resp.status_code != 200:
        raise _status_error(resp.status_code, resp.content[:MAX_ERROR_BYTES], settings)
    try:
        data = resp.json()
    except ValueError:
        raise UpstreamError(
            502, "the engine returned invalid JSON", "engine_bad_response"
        ) from None
    if not (isinstance(data, dict) and isinstance(data.get("choices"), list) and data["choices"]):
        raise UpstreamError(502, "the engine returned no choices", "engine_bad_response")
    return data


async def open_stream(
    client: httpx.AsyncClient, settings: Settings, body: dict, request_id: str | None = None
) -> httpx.Response:
    """Send a streaming request and check the answer's status before anything reaches the client."""
    headers = {"X-Request-ID": request_id} if request_id else None
    request = client.build_request(
        "POST", chat_url(settings), json=body, headers=headers, timeout=timeout(settings)
    )
    try:
        resp = await client.send(request, stream=True)
    except httpx.HTTPError as e:
        raise _transport_error(e, settings) from None
    if resp.status_code == 200 and resp.headers.get("content-type", "").startswith(
        "text/event-stream"
    ):
        return resp
    try:
        raw = b""
        async for part in resp.aiter_bytes():
            raw += part
            if len(raw) >= MAX_ERROR_BYTES:
                break
    except httpx.HTTPError:
        raw = b""
    finally:
        await resp.aclose()
    if resp.status_code == 200:
        raise UpstreamError(
            502, "the engine did not answer with an event stream", "engine_bad_response"
        )
    raise _status_error(resp.status_code, raw, settings)


async def iter_chunks(resp: httpx.Response, settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """Parse the engine's SSE into chunk dicts, one per event, as they arrive. Raises UpstreamError
    when the stream breaks, stalls, carries an error or garbage, or ends before a finish_reason."""
    finished = False
    data: list[str] = []
    try:
        async for line in resp.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
                continue
            if line or not data:  # other SSE fields and comments; blank line without data
                continue
            payload, data = "\n".join(data), []
            if payload.strip() == "[DONE]":
                return
            chunk = _parse_chunk(payload)
            finished = finished or _has_finish(chunk)
            yield chunk
    except httpx.HTTPError as e:
        if not finished:
            raise _transport_error(e, settings, mid_stream=True) from None
        return
    finally:
        await resp.aclose()
    if data:  # the last event came without its terminating blank line
        payload = "\n".join(data)
        if payload.strip() == "[DONE]":
            return
        chunk = _parse_chunk(payload)
        finished = finished or _has_finish(chunk)
        yield chunk
    if not finished:
        raise UpstreamError(
            502, "the engine stream ended before the answer finished", "engine_stream_broken"
        )


def _parse_chunk(payload: str) -> dict[str, Any]:
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise UpstreamError(
            502, "the engine sent invalid JSON mid-stream", "engine_bad_response"
        ) from None
    if not isinstance(chunk, dict):
        raise UpstreamError(502, "the engine sent a non-object chunk", "engine_bad_response")
    if chunk.get("error"):
        message = _engine_message(json.dumps({"error": chunk["error"]}).encode()) or "engine error"
        raise UpstreamError(502, f"the engine failed mid-stream: {message}", "engine_error")
    return chunk


def _has_finish(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") for c in choices
    )


def chunk_text(chunk: dict[str, Any]) -> str:
    """The content delta of a streaming chunk ('' when it has none)."""
    choices = chunk.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    delta = choices[0].get("delta") or {}
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


def usage_of(data: dict[str, Any]) -> tuple[int | None, int | None]:
    """(prompt_tokens, completion_tokens) from a response or chunk's `usage`, if it has one."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None, None
    return usage.get("prompt_tokens"), usage.get("completion_tokens")
