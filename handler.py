"""RunPod serverless entry point: start the engine, wait until it is healthy, then hand an async
generator handler to `runpod.serverless.start`. The job logic lives in `server/serverless.py`.

    MODEL=/runpod-volume/tutor python handler.py                           # on RunPod
    MODEL=runs/tiny-tutor/merged ENGINE=transformers \
        python handler.py --rp_serve_api --rp_api_port 8010                # local API server
    MODEL=runs/smollm2/export ENGINE=vllm python handler.py --rp_serve_api  # vLLM CPU: make vllm

Environment: the engine's variables (MODEL, ENGINE, SERVED_MODEL_NAME, MAX_MODEL_LEN, ...; see
docs/serving.md), or ENGINE_URL to use an engine that is already running; the gateway's limits and
system-prompt policy; MAX_CONCURRENCY jobs per worker (default 32).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STATE: dict = {}


async def handler(job: dict):
    """One RunPod job: yields outputs (streamed, and aggregated for /runsync)."""
    from server.serverless import handle_job
    from server.upstream import new_session

    if "client" not in STATE:  # created inside the worker's event loop
        STATE["client"] = new_session()
    async for output in handle_job(job.get("input"), STATE["settings"], STATE["client"]):
        yield output


def wait_for_engine(url: str, timeout_s: float) -> None:
    """Poll an external engine's /health until it answers 200."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url.rstrip("/") + "/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise SystemExit(f"handler: the engine at {url} was not healthy within {timeout_s:g} s")


@dataclass(frozen=True)
class Config:
    """Every setting of the worker, validated before anything starts."""

    spec: Any  # EngineSpec to start, or None when ENGINE_URL names a running engine
    kind: str | None  # "vllm" | "transformers"; None with ENGINE_URL
    settings: Any  # the gateway Settings the jobs use
    max_concurrency: int  # jobs per worker
    start_timeout_s: float  # seconds to wait for an ENGINE_URL engine's health


def configure(env: Mapping[str, str]) -> Config:
    """Read and check every variable (EngineError / SettingsError naming the first bad one)."""
    from server.engine import EngineSpec, resolve_engine
    from server.launch import gateway_settings
    from server.settings import Settings, env_number

    max_concurrency = env_number(env, "MAX_CONCURRENCY", 32, minimum=1)
    start_timeout_s = env_number(env, "ENGINE_START_TIMEOUT_S", 900.0, minimum=1)
    if env.get("ENGINE_URL"):
        return Config(None, None, Settings.from_env(env), max_concurrency, start_timeout_s)
    spec = EngineSpec.from_env(env)
    kind = resolve_engine(spec.engine)
    settings = gateway_settings(spec, kind, env)
    return Config(spec, kind, settings, max_concurrency, start_timeout_s)


def start() -> None:
    """Settings first, then the engine (started here, or ENGINE_URL), then the worker loop."""
    # RunPod's logger prints every job output at DEBUG; keep message text out unless asked for.
    debug = os.environ.get("LOG_LEVEL", "").upper() == "DEBUG"
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "DEBUG" if debug else "INFO")
    import runpod

    from server.engine import EngineError
    from server.launch import start_engine
    from server.observability import setup_logging
    from server.settings import SettingsError

    try:
        config = configure(os.environ)
    except (EngineError, SettingsError) as e:
        raise SystemExit(f"handler: {e}") from None
    setup_logging(config.settings.log_level)
    STATE["settings"] = config.settings
    engine = None
    try:
        if config.spec is None:
            wait_for_engine(config.settings.engine_url, config.start_timeout_s)
        else:
            engine = start_engine(config.spec, config.kind)
    except EngineError as e:
        raise SystemExit(f"handler: {e}") from None
    try:
        run_worker(runpod, engine, config.max_concurrency)
    finally:
        if engine is not None:
            engine.stop()


def run_worker(runpod: Any, engine: Any, max_concurrency: int) -> None:
    """The RunPod worker loop until it returns or SIGTERM arrives."""

    def shutdown(signum: int, frame: object) -> None:
        if engine is not None:
            engine.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    runpod.serverless.start(
        {
            "handler": handler,
            "concurrency_modifier": lambda current: max_concurrency,
            "return_aggregate_stream": True,
        }
    )


if __name__ == "__main__":
    start()
