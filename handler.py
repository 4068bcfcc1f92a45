"""RunPod serverless entry point: start the engine, wait until it is healthy, then hand an async
generator handler to `runpod.serverless.start`. The job logic lives in `server/serverless.py`.

    MODEL=/runpod-volume/tutor python handler.py                           # on RunPod
    MODEL=runs/tiny-tutor/merged ENGINE=transformers \
        python handler.py --rp_serve_api --rp_api_port 8010                # local API server

Environment: the engine's variables (MODEL, ENGINE, SERVED_MODEL_NAME, MAX_MODEL_LEN, ...; see
docs/serving.md), or ENGINE_URL to use an engine that is already running; the gateway's limits and
system-prompt policy; MAX_CONCURRENCY jobs per worker (default 32).
"""

from __future__ import annotations

import os
import signal
import sys
import time

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


def start() -> None:
    """Engine first (started here, or ENGINE_URL), then the RunPod worker loop."""
    # RunPod's logger prints every job output at DEBUG; keep message text out unless asked for.
    debug = os.environ.get("LOG_LEVEL", "").upper() == "DEBUG"
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "DEBUG" if debug else "INFO")
    import runpod

    from server.engine import EngineError, EngineSpec, resolve_engine
    from server.launch import gateway_settings, start_engine
    from server.observability import setup_logging
    from server.settings import Settings

    setup_logging(os.environ.get("LOG_LEVEL", "INFO"))
    engine = None
    try:
        if os.environ.get("ENGINE_URL"):
            STATE["settings"] = Settings.from_env()
            wait_for_engine(
                STATE["settings"].engine_url, float(os.environ.get("ENGINE_START_TIMEOUT_S", 900))
            )
        else:
            spec = EngineSpec.from_env()
            kind = resolve_engine(spec.engine)
            engine = start_engine(spec, kind)
            STATE["settings"] = gateway_settings(spec, kind)
    except EngineError as e:
        raise SystemExit(f"handler: {e}") from None

    def shutdown(signum: int, frame: object) -> None:
        if engine is not None:
            engine.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    max_concurrency = int(os.environ.get("MAX_CONCURRENCY", 32))
    try:
        runpod.serverless.start(
            {
                "handler": handler,
                "concurrency_modifier": lambda current: max_concurrency,
                "return_aggregate_stream": True,
            }
        )
    finally:
        if engine is not None:
            engine.stop()


if __name__ == "__main__":
    start()
