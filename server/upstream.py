"""The engine client: one chat request to the OpenAI-compatible engine, as JSON or as parsed SSE
chunks, with every failure mapped to an `UpstreamError` carrying the status the client should see.

    client = new_session()                                  # inside the running event loop
    data = await complete(client, settings, body)           # non-streaming
    resp = await open_stream(client, settings, body)        # raises before any byte is sent
    async for batch in iter_batches(resp, settings): ...   # [(chunk, raw JSON)]; raises
                                                          # UpstreamError mid-stream

The client is one aiohttp session: pooled keep-alive connections, no limit on how many (the
gateway's per-key limits bound them). Fault semantics: engine unreachable or not ready -> 503
(with Retry-After); engine silent longer than REQUEST_TIMEOUT_S, before the answer or between two
reads -> 504; engine 5xx, invalid JSON or a broken stream -> 502; engine 4xx -> the same 4xx with
an OpenAI-style body.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from server.chat_request import error_body
from server.settings import Settings
from tutor.errors import UserError

MAX_ERROR_BYTES = 65_536  # read at most this much of an engine's error body
KEEPALIVE_S = 4.0  # below uvicorn's 5 s (vLLM, transformers serve): we drop idle sockets first
DRAIN_S = 1.0  # after [DONE], wait this long at most for the body's end (to reuse the socket)
# A "model" field whose value is a JSON string; the value keeps its quotes (group 1).
_MODEL_FIELD = re.compile(rb'"model"\s*:\s*("(?:[^"\\]|\\.)*")')
_DECODE = json.JSONDecoder().decode  # on str: json.loads without its per-call checks


class UpstreamError(UserError):
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


def new_session() -> aiohttp.ClientSession:
    """The engine client; create it inside the event loop that will use it, close it there."""
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


def chat_url(settings: Settings) -> str:
    return settings.engine_url.rstrip("/") + "/v1/chat/completions"


@functools.cache
def timeout(settings: Settings) -> aiohttp.ClientTimeout:
    """sock_read = how long the engine may stay silent, before the answer or between chunks."""
    return aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout_s, sock_read=settings.request_timeout_s
    )


def _transport_error(e: Exception, settings: Settings, mid_stream: bool = False) -> UpstreamError:
    refused = isinstance(e, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    if refused and not mid_stream:
        return UpstreamError(
            503, "the engine is not reachable", "engine_unavailable", settings.retry_after_s
        )
    if isinstance(e, TimeoutError):  # sock_read: aiohttp.SocketTimeoutError
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


async def _error_body(resp: aiohttp.ClientResponse) -> bytes:
    """Up to MAX_ERROR_BYTES of an answer we will not relay ('' if reading it fails)."""
    raw = b""
    try:
        while len(raw) < MAX_ERROR_BYTES:
            part = await resp.content.read(MAX_ERROR_BYTES - len(raw))
            if not part:
                break
            raw += part
    except (aiohttp.ClientError, TimeoutError):
        pass
    return raw


def _headers(request_id: str | None) -> dict[str, str] | None:
    return {"X-Request-ID": request_id} if request_id else None


async def complete(
    client: aiohttp.ClientSession, settings: Settings, body: dict, request_id: str | None = None
) -> dict[str, Any]:
    """One non-streaming completion; returns the engine's ChatCompletion dict."""
    try:
        async with client.post(
            chat_url(settings), json=body, headers=_headers(request_id), timeout=timeout(settings)
        ) as resp:
            if resp.status != 200:
                raise _status_error(resp.status, await _error_body(resp), settings)
            raw = await resp.read()
    except (aiohttp.ClientError, TimeoutError) as e:
        raise _transport_error(e, settings) from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise UpstreamError(
            502, "the engine returned invalid JSON", "engine_bad_response"
        ) from None
    if not (isinstance(data, dict) and isinstance(data.get("choices"), list) and data["choices"]):
        raise UpstreamError(502, "the engine returned no choices", "engine_bad_response")
    return data


async def open_stream(
    client: aiohttp.ClientSession, settings: Settings, body: dict, request_id: str | None = None
) -> aiohttp.ClientResponse:
    """Send a streaming request and check the answer's status before anything reaches the client.
    The caller owns the response: `iter_batches` releases it, or call `resp.close()`."""
    try:
        resp = await client.post(
            chat_url(settings), json=body, headers=_headers(request_id), timeout=timeout(settings)
        )
    except (aiohttp.ClientError, TimeoutError) as e:
        raise _transport_error(e, settings) from None
    if resp.status == 200 and resp.headers.get("content-type", "").startswith("text/event-stream"):
        return resp
    try:
        raw = await _error_body(resp) if resp.status != 200 else b""
    finally:
        resp.close()
    if resp.status == 200:
        raise UpstreamError(
            502, "the engine did not answer with an event stream", "engine_bad_response"
        )
    raise _status_error(resp.status, raw, settings)


class SSEParser:
    """Server-sent events, incrementally: `feed` bytes as they arrive, get back the data payload of
    every event they complete; `end()` gives an unterminated last event. Lines end in LF or CRLF;
    fields other than `data` and comments are skipped."""

    def __init__(self) -> None:
        self.tail = b""  # an incomplete line
        self.data: list[bytes] = []  # data lines of the event being read

    def feed(self, piece: bytes) -> list[bytes]:
        lines = (self.tail + piece).split(b"\n")
        self.tail = lines.pop()
        events = []
        for line in lines:
            if line.startswith(b"data:"):
                value = line[5:].removesuffix(b"\r")
                self.data.append(value[1:] if value.startswith(b" ") else value)
            elif self.data and (not line or line == b"\r"):
                events.append(b"\n".join(self.data))
                self.data = []
        return events

    def end(self) -> bytes | None:
        events = self.feed(b"\n\n")
        return events[0] if events else None


async def iter_batches(
    resp: aiohttp.ClientResponse, settings: Settings
) -> AsyncIterator[list[tuple[dict[str, Any], bytes]]]:
    """The engine's SSE as lists of (chunk dict, its raw JSON), one list per socket read that
    completed any events: a relay that falls behind catches up in fewer, larger writes, and never
    waits for more. Releases the connection at the end. Raises UpstreamError (after the chunks
    before it) when the stream breaks, stalls, carries an error or garbage, or ends before a
    finish_reason."""
    parser, finished = SSEParser(), False
    try:
        async for piece in resp.content.iter_any():
            batch, done, error, ends = _parse_events(parser.feed(piece))
            finished = finished or ends
            if batch:
                yield batch
            if error is not None:
                raise error
            if done:
                await _drain(resp)
                return
    except (aiohttp.ClientError, TimeoutError) as e:
        if not finished:
            raise _transport_error(e, settings, mid_stream=True) from None
        return
    finally:
        resp.release()  # back to the pool when the body was read to its end, else closed
    last = parser.end()  # the last event came without its terminating blank line
    batch, done, error, ends = _parse_events([last] if last is not None else [])
    finished = finished or ends
    if batch:
        yield batch
    if error is not None:
        raise error
    if not (done or finished):
        raise UpstreamError(
            502, "the engine stream ended before the answer finished", "engine_stream_broken"
        )


def _parse_events(
    payloads: list[bytes],
) -> tuple[list[tuple[dict[str, Any], bytes]], bool, UpstreamError | None, bool]:
    """(the chunks before [DONE] or the first bad event, [DONE] seen?, the bad event's error,
    does a chunk carry a finish_reason?)."""
    batch, ends = [], False
    for payload in payloads:
        if payload.strip() == b"[DONE]":
            return batch, True, None, ends
        try:
            chunk = _parse_chunk(payload)
        except UpstreamError as e:
            return batch, False, e, ends
        ends = ends or _has_finish(chunk)
        batch.append((chunk, payload))
    return batch, False, None, ends


async def _drain(resp: aiohttp.ClientResponse) -> None:
    """Read what follows [DONE] up to the body's end (briefly), so the socket can be reused."""
    try:
        async with asyncio.timeout(DRAIN_S):
            while await resp.content.readany():
                pass
    except (aiohttp.ClientError, TimeoutError):
        pass


def _parse_chunk(payload: bytes) -> dict[str, Any]:
    try:
        chunk = _DECODE(payload.decode())
    except ValueError:  # UnicodeDecodeError too
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
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                return True
    return False


@functools.lru_cache(maxsize=64)
def _json_string(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode()


@functools.lru_cache(maxsize=64)
def _json_value(raw: bytes) -> Any:
    return json.loads(raw)


def with_model(raw: bytes, chunk: dict[str, Any], model: str) -> bytes:
    """`raw`, the JSON text of `chunk`, with the top-level "model" set to `model`. A splice of the
    bytes when "model" occurs once, as a string equal to the parsed one (the engine's own field);
    otherwise the chunk is encoded again. Either way the result parses to the same object."""
    found = _MODEL_FIELD.search(raw)
    if (
        found is not None
        and isinstance(chunk.get("model"), str)
        and _MODEL_FIELD.search(raw, found.end()) is None
        and _json_value(found.group(1)) == chunk["model"]
    ):
        start, end = found.span(1)
        return raw[:start] + _json_string(model) + raw[end:]
    chunk["model"] = model
    return json.dumps(chunk, ensure_ascii=False).encode()


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
