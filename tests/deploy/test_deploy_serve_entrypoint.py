"""docker/serve_entrypoint.sh: one serving image, two modes.

Runs the real entry point with a fake `socratic` and a fake `python` on PATH (the real ones would
start vLLM, which needs a GPU). Covered: MODE=gateway runs `socratic serve` with the vLLM engine on
0.0.0.0:$PORT, MODE=serverless runs handler.py, a Hub repo id (model or LoRA adapter) is fetched
first into HF_HOME and served from the local copy, and bad MODE / missing MODEL fail with exit 2.
Without MODE: serverless inside a RunPod queue worker (RUNPOD_WEBHOOK_GET_JOB or
RUNPOD_ENDPOINT_ID set), gateway otherwise and on a load-balancing endpoint (PORT_HEALTH set), an
explicit MODE winning, with one log line saying which and why; MODEL_NAME stands in for MODEL.
(tests/server/test_server_worker_vllm_env.py runs a job through the real entry point.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENTRYPOINT = REPO / "docker" / "serve_entrypoint.sh"
FAKE_PYTHON = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$FAKE_PYTHON_LOG"
case "$1" in
  *fetch_model.py) echo "Fetching 12 files: 100%"; echo "$FAKE_FETCHED_DIR/$2" ;;
esac
"""


@pytest.fixture
def serve(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(HERE / "fakes" / "socratic", bin_dir / "socratic")
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    model_dir = tmp_path / "export"
    model_dir.mkdir()

    def run(env):
        full = {
            "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
            "FAKE_SOCRATIC_LOG": str(tmp_path / "socratic.jsonl"),
            "FAKE_PYTHON_LOG": str(tmp_path / "python.log"),
            "FAKE_FETCHED_DIR": str(tmp_path / "hf"),
            "HF_HOME": str(tmp_path / "hf"),
            **env,
        }
        done = subprocess.run(
            ["bash", str(ENTRYPOINT)], env=full, capture_output=True, text=True, timeout=30
        )
        log = tmp_path / "socratic.jsonl"
        socratic = (
            [json.loads(x)["argv"] for x in log.read_text().splitlines()] if log.exists() else []
        )
        py = tmp_path / "python.log"
        python = py.read_text().splitlines() if py.exists() else []
        return done, socratic, python

    run.model_dir = model_dir
    return run


def test_gateway_serves_a_local_model_with_vllm(serve):
    done, socratic, python = serve({"MODEL": str(serve.model_dir), "PORT": "9100"})
    assert done.returncode == 0, done.stderr
    assert socratic == [
        ["serve", "--model", str(serve.model_dir), "--engine", "vllm", "--host", "0.0.0.0",
         "--port", "9100"],
    ]  # fmt: skip
    assert python == []  # nothing to fetch


def test_gateway_fetches_hub_repos_first(serve, tmp_path):
    env = {"MODEL": "me/tutor", "MODEL_REVISION": "v1", "LORA_ADAPTER": "me/tutor-lora"}
    done, socratic, python = serve(env)
    assert done.returncode == 0, done.stderr
    fetch = str(REPO / "docker" / "fetch_model.py")
    assert python == [f"{fetch} me/tutor --revision v1", f"{fetch} me/tutor-lora"]
    # Served from the fetched copy: the last line the fetcher printed.
    assert socratic[0][:3] == ["serve", "--model", str(tmp_path / "hf" / "me/tutor")]
    assert "fetching me/tutor into" in done.stdout


def test_serverless_runs_the_handler(serve):
    done, socratic, python = serve({"MODE": "serverless", "MODEL": str(serve.model_dir)})
    assert done.returncode == 0, done.stderr
    assert socratic == []
    assert len(python) == 1 and Path(python[0]).resolve() == REPO / "handler.py"


@pytest.mark.parametrize(
    ("env", "message"),
    [({"MODE": "batch", "MODEL": "/"}, "MODE must be gateway or serverless"), ({}, "set MODEL")],
)
def test_bad_settings_exit_2(serve, env, message):
    done, socratic, _ = serve(env)
    assert done.returncode == 2
    assert message in done.stderr
    assert socratic == []


@pytest.mark.parametrize(
    ("env", "mode", "why"),
    [
        ({"RUNPOD_WEBHOOK_GET_JOB": "http://x/job-take/$ID"}, "serverless", "RUNPOD_WEBHOOK_GET_JOB is set"),
        ({"RUNPOD_ENDPOINT_ID": "abc123"}, "serverless", "RUNPOD_ENDPOINT_ID is set"),
        ({"RUNPOD_ENDPOINT_ID": "abc123", "PORT_HEALTH": "8001"}, "gateway", "PORT_HEALTH is set"),
        ({"RUNPOD_WEBHOOK_GET_JOB": "http://x", "MODE": "gateway"}, "gateway", "MODE is set"),
        ({}, "gateway", "no MODE and no RunPod worker variables"),
    ],
)  # fmt: skip
def test_mode_is_detected_and_explained(serve, env, mode, why):
    done, socratic, python = serve({"MODEL_NAME": str(serve.model_dir), **env})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"serve: mode {mode} ({why}")
    if mode == "gateway":
        assert socratic[0][:3] == ["serve", "--model", str(serve.model_dir)] and python == []
    else:
        assert socratic == [] and Path(python[0]).resolve() == REPO / "handler.py"
