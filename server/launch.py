"""Start engine + gateway together: in the foreground (`socratic serve`) or in the background for
the demo, the benchmarks and the tests.

    with serve_in_background("runs/tiny-tutor/merged", engine="transformers") as handle:
        OpenAI(base_url=handle.url + "/v1", api_key="-").chat.completions.create(...)

    # base and tuned from ONE vLLM engine (base + LoRA adapter), a gateway for each name
    with serve_base_and_tuned(base_dir, "runs/smollm2/adapter") as pair:
        pair.base.url, pair.tuned.url       # models "base" and "socratic-tutor"

The foreground server restarts a dead engine up to ENGINE_MAX_RESTARTS times (the gateway answers
503 meanwhile) and otherwise exits 1 with the engine's last log lines.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.engine import (
    EngineError,
    EngineProcess,
    EngineSpec,
    base_model_name,
    engine_launch,
    resolve_engine,
    stop_token_warning,
    upstream_model,
)
from server.observability import log_event, setup_logging
from server.settings import LOOPBACK_HOSTS, Settings
from tutor.proc import ThreadedUvicorn, free_port


def start_engine(spec: EngineSpec, kind: str, echo: bool = True) -> EngineProcess:
    """Launch the engine and wait until it is healthy (EngineError otherwise)."""
    warning = stop_token_warning(spec.model) if Path(spec.model).is_dir() else None
    if warning:
        log_event("engine_stop_token", level=30, warning=warning)
    command, env = engine_launch(spec, kind)
    engine = EngineProcess(command, env, spec.health_url, echo=echo)
    log_event(
        "engine_starting", engine=kind, model=spec.model, port=spec.engine_port, argv=command[:3]
    )
    started = time.monotonic()
    engine.start()
    try:
        engine.wait_healthy(spec.engine_start_timeout_s)
    except BaseException:  # e.g. Ctrl-C while the model loads: never leave the engine behind
        engine.stop()
        raise
    log_event("engine_ready", engine=kind, seconds=round(time.monotonic() - started, 1))
    return engine


def gateway_settings(spec: EngineSpec, kind: str, env: Any = None, **overrides: Any) -> Settings:
    """Gateway settings pointed at the engine described by `spec`."""
    return Settings.from_env(
        env,
        engine_url=spec.url,
        served_model_name=spec.served_model_name,
        upstream_model=upstream_model(spec, kind),
        model_dir=spec.lora_adapter or spec.model,
        **overrides,
    )


class GatewayThread(ThreadedUvicorn):
    """A uvicorn server for the gateway app running in a daemon thread (start(), port, stop())."""

    def __init__(self, settings: Settings):
        from server.gateway import create_app

        self.settings = settings
        super().__init__(create_app(settings), settings.host, settings.port)


@dataclass
class ServeHandle:
    """A running engine + gateway; `url` is the gateway's base URL (append /v1 for clients)."""

    url: str
    settings: Settings
    engine: EngineProcess | None
    gateway: GatewayThread
    spec: EngineSpec | None = None

    def stop(self) -> None:
        self.gateway.stop()
        if self.engine is not None:
            self.engine.stop()

    def __enter__(self) -> ServeHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_background(
    model_dir: str | os.PathLike,
    port: int = 0,
    engine: str = "transformers",
    host: str = "127.0.0.1",
    engine_port: int | None = None,
    start_timeout_s: float = 300.0,
    echo_engine: bool = False,
    lora_adapter: str | os.PathLike | None = None,
    **settings: Any,
) -> ServeHandle:
    """Start the engine for `model_dir` (plus `lora_adapter` on vLLM) and the gateway on
    host:port (0 = a free port); return once both answer. `settings` override gateway Settings
    fields (e.g. api_keys=("k",))."""
    spec = EngineSpec(
        model=str(model_dir),
        engine=engine,
        engine_port=engine_port or free_port(),
        engine_start_timeout_s=start_timeout_s,
        served_model_name=settings.pop("served_model_name", "socratic-tutor"),
        lora_adapter=str(lora_adapter) if lora_adapter else None,
    )
    kind = resolve_engine(spec.engine)
    proc = start_engine(spec, kind, echo=echo_engine)
    try:
        gateway = GatewayThread(gateway_settings(spec, kind, {}, host=host, port=port, **settings))
        gateway.start()
    except BaseException:
        proc.stop()
        raise
    return ServeHandle(f"http://{host}:{gateway.port}", gateway.settings, proc, gateway, spec)


def base_settings(tuned: Settings, spec: EngineSpec, name: str = "base", port: int = 0) -> Settings:
    """Gateway settings for the base model of a base + LoRA engine: what the adapter's gateway
    has (system prompt, limits, keys) with clients' name `name` and vLLM's base model name."""
    return dataclasses.replace(
        tuned, served_model_name=name, upstream_model=base_model_name(spec), port=port
    )


@dataclass
class PairHandle:
    """One vLLM engine serving a base model and its LoRA adapter, and a gateway for each."""

    base: ServeHandle  # its engine is None: the tuned handle owns the one engine
    tuned: ServeHandle

    def stop(self) -> None:
        self.base.stop()
        self.tuned.stop()

    def __enter__(self) -> PairHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_base_and_tuned(
    base_model: str | os.PathLike,
    adapter: str | os.PathLike,
    base_name: str = "base",
    tuned_name: str = "socratic-tutor",
    base_port: int = 0,
    tuned_port: int = 0,
    start_timeout_s: float = 900.0,
    **kwargs: Any,
) -> PairHandle:
    """Base and tuned from one vLLM engine (base + LoRA, two model names), as a GPU deployment
    serves them: a gateway per name, both with the same system prompt (the adapter's tutor.json,
    else the project's prompt) and settings. `kwargs` go to `serve_in_background`.

    On vLLM's CPU build (0.32) a base-model request batched together with adapter requests is
    answered with the adapter applied (sequential requests are right): compare base and tuned
    concurrently on CPU with two engines instead (`socratic demo` does)."""
    tuned = serve_in_background(
        base_model, tuned_port, engine="vllm", lora_adapter=adapter, served_model_name=tuned_name,
        start_timeout_s=start_timeout_s, **kwargs,
    )  # fmt: skip
    try:
        gateway = GatewayThread(base_settings(tuned.settings, tuned.spec, base_name, base_port))
        gateway.start()
    except BaseException:
        tuned.stop()
        raise
    host = tuned.settings.host
    base = ServeHandle(f"http://{host}:{gateway.port}", gateway.settings, None, gateway, tuned.spec)
    return PairHandle(base, tuned)


def serve_gateway_only(settings_overrides: dict[str, Any]) -> int:
    """`socratic serve --engine-url URL`: the gateway alone, in front of a running engine."""
    import uvicorn

    from server.gateway import create_app, listen_sockets

    settings = Settings.from_env(os.environ, **settings_overrides)
    setup_logging(settings.log_level)
    log_event(
        "gateway_listening",
        url=f"http://{settings.host}:{settings.port}",
        engine=settings.engine_url,
    )
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_level="warning"
    )
    signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn re-raises it after draining: exit 0
    uvicorn.Server(config).run(sockets=listen_sockets(settings))
    return 0


def serve_foreground(
    spec: EngineSpec, settings_overrides: dict[str, Any], max_restarts: int
) -> int:
    """`socratic serve`: engine, then the gateway in this thread until SIGTERM/SIGINT; exit code."""
    import uvicorn

    from server.gateway import create_app, listen_sockets

    kind = resolve_engine(spec.engine)
    settings = gateway_settings(spec, kind, **settings_overrides)
    setup_logging(settings.log_level)
    if not settings.api_keys and settings.host not in LOOPBACK_HOSTS:
        log_event(
            "no_api_keys",
            level=30,
            host=settings.host,
            warning="open to the network without API keys",
        )
    engine = start_engine(spec, kind)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host=settings.host, port=settings.port, log_level="warning"
        )
    )
    state = {"failed": False}
    watcher = threading.Thread(
        target=watch_engine, args=(engine, spec, server, max_restarts, state), daemon=True
    )
    watcher.start()
    log_event("gateway_listening", url=f"http://{settings.host}:{settings.port}", engine=kind)
    # uvicorn drains requests on SIGTERM, then re-raises the signal: this handler makes that a
    # no-op so the engine below is stopped (and gets its SIGTERM) before the process exits.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run(sockets=listen_sockets(settings))
    finally:
        state["stopping"] = True
        engine.stop()
    return 1 if state["failed"] else 0


def watch_engine(
    engine: EngineProcess, spec: EngineSpec, server: Any, max_restarts: int, state: dict
) -> None:
    """Restart a dead engine (up to `max_restarts` times), else stop the gateway with exit 1."""
    restarts = 0
    while not server.should_exit and not state.get("stopping"):
        time.sleep(1.0)
        if engine.alive or state.get("stopping"):
            continue
        log_event("engine_died", level=40, code=engine.proc.returncode, last_lines=engine.tail())
        if restarts >= max_restarts:
            print(
                f"socratic: error: the engine died; last log lines:\n{engine.tail()}",
                file=sys.stderr,
            )
            state["failed"] = True
            server.should_exit = True
            return
        restarts += 1
        log_event("engine_restarting", attempt=restarts, of=max_restarts)
        try:
            engine.start()
            engine.wait_healthy(spec.engine_start_timeout_s)
        except EngineError as e:
            print(f"socratic: error: {e}", file=sys.stderr)
            state["failed"] = True
            server.should_exit = True
            return
