"""RunPod serverless entry point: start the engine, wait until it is healthy, then hand an async
generator handler to `runpod.serverless.start`. The job logic lives in `server/serverless.py`.

    MODEL=/runpod-volume/tutor python handler.py                           # on RunPod
    MODEL=runs/tiny-tutor/merged ENGINE=transformers \
        python handler.py --rp_serve_api --rp_api_port 8010                # local API server
    MODEL=runs/smollm2/export ENGINE=vllm python handler.py --rp_serve_api  # vLLM CPU: make vllm

Environment: the engine's variables (MODEL, ENGINE, SERVED_MODEL_NAME, MAX_MODEL_LEN, ...; see
docs/serving.md), or ENGINE_URL to use an engine that is already running; the gateway's limits and
system-prompt policy; MAX_CONCURRENCY jobs per worker (default 32). Under `runpodctl project dev`
the handler runs in an SSH session, which does not carry the pod's environment: variables missing
there are read from the copy RunPod's base image saves at start (/etc/rp_environment).
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutor.proc import StartError, wait_healthy

STATE: dict = {}
# runpod/base's start script writes the pod's environment here as `export NAME="value"` lines.
POD_ENVIRONMENT = Path("/etc/rp_environment")


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
    try:
        wait_healthy(url.rstrip("/") + "/health", timeout_s, poll_s=1.0)
    except StartError:
        raise SystemExit(
            f"handler: the engine at {url} was not healthy within {timeout_s:g} s"
        ) from None


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
    from server.vllm_flags import with_aliases

    env = with_aliases(env)  # worker-vllm's MODEL_NAME, VLLM_STARTUP_TIMEOUT, ...
    max_concurrency = env_number(env, "MAX_CONCURRENCY", 32, minimum=1)
    start_timeout_s = env_number(env, "ENGINE_START_TIMEOUT_S", 900.0, minimum=1)
    if env.get("ENGINE_URL"):
        return Config(None, None, Settings.from_env(env), max_concurrency, start_timeout_s)
    spec = EngineSpec.from_env(env)
    kind = resolve_engine(spec.engine)
    settings = gateway_settings(spec, kind, env)
    return Config(spec, kind, settings, max_concurrency, start_timeout_s)


def pod_environment(path: Path = POD_ENVIRONMENT) -> dict[str, str]:
    """The pod's environment as runpod/base saved it; {} when there is no such file."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    matches = (re.fullmatch(r'export ([A-Za-z_][A-Za-z0-9_]*)="(.*)"', x) for x in lines)
    return {m[1]: m[2] for m in matches if m}


def exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM becomes SystemExit(0), so `start`'s `finally` stops the engine."""
    raise SystemExit(0)


def start() -> None:
    """Settings first, then the engine (started here, or ENGINE_URL), then the worker loop.

    The engine is stopped in one place, the `finally` below, however the worker ends. On RunPod
    the SDK's JobScaler replaces any SIGTERM handler with its own graceful shutdown, after which
    `runpod.serverless.start` returns. Before that (while the engine loads) and under the SDK's
    local API server (`--rp_serve_api`, what `runpodctl project dev` runs: uvicorn restores the
    previous handler and re-raises SIGTERM once it has shut down) a SIGTERM would kill the
    process without running `finally`; `exit_on_sigterm` turns it into SystemExit instead.
    """
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    for name, value in pod_environment().items():
        os.environ.setdefault(name, value)
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
        run_worker(runpod, config.max_concurrency)
    except EngineError as e:
        raise SystemExit(f"handler: {e}") from None
    finally:
        if engine is not None:
            engine.stop()


def run_worker(runpod: Any, max_concurrency: int) -> None:
    """The RunPod worker loop until it returns (after SIGTERM on RunPod)."""
    runpod.serverless.start(
        {
            "handler": handler,
            "concurrency_modifier": lambda current: max_concurrency,
            "return_aggregate_stream": True,
        }
    )


if __name__ == "__main__":
    start()
