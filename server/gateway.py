"""The OpenAI-compatible FastAPI gateway in front of the engine.

    app = create_app(Settings.from_env())
    uvicorn.run(app, host=settings.host, port=settings.port)       # or: socratic serve

Routes: POST /v1/chat/completions (JSON, or SSE passed through chunk by chunk), GET /v1/models,
GET /health (the gateway lives), GET /ready (the engine answers), GET /ping (RunPod load-balancing
endpoints: 200 ready, 204 while the engine starts), GET /metrics (Prometheus), and the student chat
page at / with its files under /webui/ (server/web.py; WEB_UI=0 turns it off).
Every error answers an OpenAI-style body {"error": {"message", "type", "code", "param"}}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from server import upstream
from server.chat_request import RequestError, error_body, models_list, normalize_chat_request
from server.limits import KeyLimiter, authenticate
from server.observability import Metrics, log_event, setup_logging
from server.settings import Settings
from server.web import add_web_ui

CHAT_ROUTE = "/v1/chat/completions"
REQUEST_ID = "X-Request-ID"


def create_app(settings: Settings, client: aiohttp.ClientSession | None = None) -> FastAPI:
    """Build the gateway. `client` (optional) is the aiohttp session used to reach the engine;
    by default the app makes its own (`upstream.new_session`) and closes it on shutdown."""
    setup_logging(settings.log_level)
    metrics = Metrics()
    limiter = KeyLimiter(settings.max_concurrency_per_key, settings.rate_limit_per_minute)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = client is None
        app.state.client = client or upstream.new_session()
        yield
        if own:
            await app.state.client.close()

    app = Gateway(title="socratic-tutor gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings, app.state.metrics = settings, metrics

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return error_response(exc.status, exc.body(), exc.retry_after)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(
            exc.status_code, error_body(str(exc.detail), "invalid_request_error", code)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error(request.url.path, exc)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        url = settings.engine_url.rstrip("/") + "/health"
        wait = aiohttp.ClientTimeout(total=settings.connect_timeout_s)
        try:
            async with request.app.state.client.get(url, timeout=wait) as resp:
                if resp.status == 200:
                    return JSONResponse({"status": "ready", "model": settings.served_model_name})
        except (aiohttp.ClientError, TimeoutError):
            pass
        body = error_body("the engine is not ready", "server_error", "engine_unavailable")
        return error_response(503, body, settings.retry_after_s)

    @app.get("/ping")
    async def ping(request: Request) -> Response:
        # RunPod's load balancer: 200 routes requests here, 204 means "still initialising".
        answer = await ready(request)
        return (
            JSONResponse({"status": "healthy"})
            if answer.status_code == 200
            else Response(status_code=204)
        )

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authenticate(request.headers.get("authorization"), settings.api_keys)
        return models_list(settings)

    @app.get("/metrics")
    async def metrics_route() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.chat = ChatRoute(settings, metrics, limiter)
    app.router.add_route(CHAT_ROUTE, app.chat, methods=["POST"])  # other methods: 405

    if settings.web_ui:
        add_web_ui(app)
    return app


def listen_sockets(settings: Settings) -> list[socket.socket]:
    """Bound sockets for uvicorn: PORT, and PORT_HEALTH when it is another port (RunPod's
    load-balancing endpoints probe GET /ping there)."""
    ports = [settings.port]
    if settings.port_health and settings.port_health != settings.port:
        ports.append(settings.port_health)
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    return [socket.create_server((settings.host, port), family=family) for port in ports]


class Gateway(FastAPI):
    """FastAPI for every route but POST /v1/chat/completions, which goes straight to its plain
    ASGI handler: no middleware stack, routing or wrapped `send` per streamed chunk on the path
    every token takes (measured: bench/gateway_peers.py)."""

    chat: ChatRoute | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.chat and scope["type"] == "http" and scope["path"] == CHAT_ROUTE:
            if scope["method"] == "POST":
                scope["app"] = self  # Request.app: the engine client in app.state
                await self.chat(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class ChatRoute:
    """The chat endpoint as a plain ASGI app (Starlette wraps functions, not other callables);
    `handle_chat` reads and checks the body itself. An unexpected error before the answer
    starts is a logged 500 with an OpenAI-style body, as on every other route."""

    def __init__(self, settings: Settings, metrics: Metrics, limiter: KeyLimiter):
        self.settings, self.metrics, self.limiter = settings, metrics, limiter

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        try:
            response = await handle_chat(request, self.settings, self.metrics, self.limiter)
        except Exception as exc:
            response = unexpected_error(CHAT_ROUTE, exc)
        await response(scope, receive, send)


def unexpected_error(route: str, exc: Exception) -> JSONResponse:
    """A bug, not the client's or the engine's fault: logged, answered 500."""
    log_event("unexpected_error", logging.ERROR, route=route, error=type(exc).__name__)
    return error_response(
        500, error_body("internal gateway error", "server_error", "internal_error")
    )


def error_response(
    status: int, body: dict, retry_after: int | None = None, rid: str | None = None
) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    if rid:
        headers[REQUEST_ID] = rid
    return JSONResponse(body, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    too_large = RequestError(413, f"request body larger than {limit} bytes", "request_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise too_large
        parts.append(part)
    return b"".join(parts)


async def parse_chat(request: Request, settings: Settings) -> tuple[str | None, dict]:
    """Authenticate, bound, parse and normalise one chat request: (key label, engine body)."""
    who = authenticate(request.headers.get("authorization"), settings.api_keys)
    raw = await read_body(request, settings.max_body_bytes)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "request body is not valid JSON", "invalid_json") from None
    return who, normalize_chat_request(body, settings)


async def handle_chat(
    request: Request, settings: Settings, metrics: Metrics, limiter: KeyLimiter
) -> Response:
    rid = request.headers.get(REQUEST_ID) or uuid.uuid4().hex
    log = {"id": rid, "route": CHAT_ROUTE, "key": None, "stream": None}
    started = time.perf_counter()
    try:
        log["key"], body = await parse_chat(request, settings)
        log["stream"] = body["stream"]
        if settings.debug:
            log["messages"] = body["messages"]
        who = log["key"] or (request.client.host if request.client else "unknown")
        limiter.acquire(who)
    except RequestError as e:
        finish(metrics, log, started, e.status, error=e.code)
        return error_response(e.status, e.body(), e.retry_after, rid)
    metrics.in_flight.inc()
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            limiter.release(who)
            metrics.in_flight.dec()

    client: aiohttp.ClientSession = request.app.state.client
    try:
        if body["stream"]:
            resp = await upstream.open_stream(client, settings, body, rid)
        else:
            data = await upstream.complete(client, settings, body, rid)
    except upstream.UpstreamError as e:
        release()
        metrics.engine_errors.labels(e.code).inc()
        finish(metrics, log, started, e.status, error=e.code)
        return error_response(e.status, e.body(), e.retry_after, rid)
    except BaseException:  # cancelled by a client that went away
        release()
        raise
    if not body["stream"]:
        release()
        data["model"] = settings.served_model_name
        log["prompt_tokens"], log["completion_tokens"] = upstream.usage_of(data)
        finish(metrics, log, started, 200)
        return JSONResponse(data, headers={REQUEST_ID: rid})
    events = stream_events(resp, settings, metrics, log, started, release)

    async def on_close() -> None:
        await events.aclose()  # runs the relay's own cleanup if it had started
        if not released:  # the client left before the relay's first step
            finish(metrics, log, started, 499, error="client_disconnected")
            release()
        resp.close()

    headers = {REQUEST_ID: rid, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return RelayResponse(events, on_close, headers)


class RelayResponse(Response):
    """An event stream relayed from `content`, which always runs `on_close` (also when the client
    hangs up before the relay ever ran). A second plain asyncio task watches for the client's
    disconnect and cancels the relay at once; Starlette's StreamingResponse spends an anyio task
    group and cancel scope per response on the same job."""

    def __init__(self, content: Any, on_close: Callable[[], Any], headers: dict[str, str]):
        self.content, self.on_close = content, on_close
        self.status_code, self.media_type, self.background = 200, "text/event-stream", None
        self.init_headers(headers)  # no body: no content-length

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        relay = asyncio.ensure_future(self._relay(send))
        watch = asyncio.ensure_future(_cancel_on_disconnect(receive, relay))
        try:
            await asyncio.wait((relay,))
        finally:
            relay.cancel()
            watch.cancel()
            await asyncio.gather(relay, watch, return_exceptions=True)
            await self.on_close()
        if not relay.cancelled() and relay.exception() is not None:
            raise relay.exception()

    async def _relay(self, send: Any) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        async for chunk in self.content:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _cancel_on_disconnect(receive: Any, task: asyncio.Future) -> None:
    """Cancel `task` the moment the client hangs up (no later wake-up in between)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel()


async def stream_events(
    resp: aiohttp.ClientResponse,
    settings: Settings,
    metrics: Metrics,
    log: dict,
    started: float,
    release: Callable[[], None],
) -> AsyncIterator[bytes]:
    """Relay the engine's chunks as they come, each with `model` rewritten in place (no second
    JSON encoding), all those one read brought in one write; a failure mid-stream ends with an
    error event."""
    status, error, completion = 200, None, 0
    model = settings.served_model_name
    try:
        async for batch in upstream.iter_batches(resp, settings):
            out = []
            for chunk, raw in batch:
                if upstream.chunk_text(chunk):
                    if completion == 0:
                        metrics.first_token.observe(time.perf_counter() - started)
                    completion += 1
                prompt, reported = upstream.usage_of(chunk)
                if reported is not None:
                    log["prompt_tokens"], completion = prompt, reported
                out.append(b"data: " + upstream.with_model(raw, chunk, model) + b"\n\n")
            yield b"".join(out)
    except upstream.UpstreamError as e:
        status, error = e.status, e.code
        metrics.engine_errors.labels(e.code).inc()
        yield f"data: {json.dumps(e.body())}\n\n".encode()
    except (asyncio.CancelledError, GeneratorExit):  # the client left mid-stream
        status, error = 499, "client_disconnected"
        raise
    finally:
        release()
        log["completion_tokens"] = completion
        finish(metrics, log, started, status, error=error)
    yield b"data: [DONE]\n\n"


def finish(
    metrics: Metrics, log: dict, started: float, status: int, error: str | None = None
) -> None:
    """Count, time and log one chat request."""
    latency = time.perf_counter() - started
    metrics.requests.labels(CHAT_ROUTE, str(status)).inc()
    metrics.latency.labels(CHAT_ROUTE).observe(latency)
    for kind in ("prompt", "completion"):
        if isinstance(log.get(f"{kind}_tokens"), int):
            metrics.tokens.labels(kind).inc(log[f"{kind}_tokens"])
    level = logging.INFO if status < 500 else logging.WARNING
    log_event("chat", level, status=status, latency_ms=round(latency * 1000, 1), error=error, **log)
