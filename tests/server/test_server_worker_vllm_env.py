"""worker-vllm's interface: its variables reach `vllm serve` as flags, /ping and PORT_HEALTH for
RunPod's load-balancing endpoints, and the serve image's entry point taking a RunPod job with no
MODE set.

Covered: the flag table (server/vllm_serve_flags.json) equals what the installed vLLM's own
`--help=all` lists (printed as variable -> flag -> kind); the one rule (values verbatim, pairs as
--flag/--no-flag, switches on or absent, bad booleans named, the project's own variables and flags
never mapped); MODEL_NAME, OPENAI_SERVED_MODEL_NAME_OVERRIDE, ENABLE_PREFIX_CACHING and
MAX_NUM_SEQS through the flag builder, parsed by vLLM's own argument parser; /ping 204 then 200;
`socratic serve --engine-url` answering /ping on PORT_HEALTH too; docker/serve_entrypoint.sh with
only RunPod's worker variables (RUNPOD_WEBHOOK_GET_JOB, ...) running the worker that takes a job
from the fake RunPod job API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_handler_worker_loop import USER, FakeRunPod, stop_worker

from server.engine import EngineError, EngineSpec, engine_launch, vllm_command
from server.launch import free_port
from server.vllm_flags import FlagError, installed_help, parse_help, serve_flags, vllm_env_flags
from tutor.paths import REPO_ROOT

# vLLM's own parser, as its server's main() builds it, on the argv given as JSON.
PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser
args = make_arg_parser(FlexibleArgumentParser()).parse_args(json.loads(sys.argv[1]))
validate_parsed_serve_args(args)
print(json.dumps({k: getattr(args, k) for k in
    ("model", "served_model_name", "enable_prefix_caching", "max_num_seqs", "enforce_eager")}))
"""


def test_flag_table_is_the_installed_vllms_help(vllm_install):
    flags = parse_help(installed_help(vllm_install.python))
    for flag, kind in flags.items():  # the mapping, for the log (pytest -s)
        print(f"{flag[2:].upper().replace('-', '_'):45} {flag:45} {kind}")
    assert flags == serve_flags(), "regenerate: python -m server.vllm_flags --write"
    assert flags["--enable-prefix-caching"] == "pair" and flags["--max-num-seqs"] == "value"
    assert flags["--disable-log-stats"] == "switch" and flags["--kv-cache-dtype"] == "value"


def test_one_rule_for_every_flag():
    env = {
        "ENABLE_PREFIX_CACHING": "true", "ENFORCE_EAGER": "False", "MAX_NUM_SEQS": "8",
        "DISABLE_LOG_STATS": "no", "KV_CACHE_DTYPE": "fp8", "SEED": "",  # empty: unset
        "MAX_MODEL_LEN": "4096", "PORT": "8000", "HF_TOKEN": "hf_x",  # the project's own, secret
        "MAX_LORA_RANK": "64", "HOME": "/root", "max_num_batched_tokens": "64",  # not UPPER_SNAKE
    }  # fmt: skip
    own = {"MAX_MODEL_LEN", "MAX_LORA_RANK"}
    assert vllm_env_flags(env, own=own) == [
        "--enable-prefix-caching", "--no-enforce-eager", "--kv-cache-dtype", "fp8",
        "--max-num-seqs", "8",
    ]  # fmt: skip
    assert vllm_env_flags({"MAX_NUM_SEQS": "8"}, taken={"--max-num-seqs"}) == []
    assert vllm_env_flags({"DISABLE_LOG_STATS": "1"}) == ["--disable-log-stats"]
    with pytest.raises(FlagError, match="ENABLE_PREFIX_CACHING: --enable-prefix-caching is a"):
        vllm_env_flags({"ENABLE_PREFIX_CACHING": "sometimes"})


def test_flag_builder_keeps_the_projects_flags_and_extra_args_last(tmp_path):
    env = {"MODEL": str(tmp_path), "MAX_MODEL_LEN": "2048", "SERVED_MODEL_NAME": "tutor",
           "VLLM_EXTRA_ARGS": "--max-num-seqs 4", "MAX_NUM_SEQS": "8", "DTYPE": "half",
           "GENERATION_CONFIG": "vllm", "ENABLE_PREFIX_CACHING": "true"}  # fmt: skip
    cmd = vllm_command(EngineSpec.from_env(env), env=env)
    assert cmd.count("--max-model-len") == 1 and cmd[cmd.index("--max-model-len") + 1] == "2048"
    assert cmd.count("--generation-config") == 1  # ours (auto): the model's eos stops replies
    assert cmd[cmd.index("--generation-config") + 1] == "auto"
    assert cmd[cmd.index("--dtype") + 1] == "half" and cmd.count("--dtype") == 1
    assert cmd[-4:] == ["--max-num-seqs", "8", "--max-num-seqs", "4"]  # VLLM_EXTRA_ARGS win
    assert "--enable-prefix-caching" in cmd
    with pytest.raises(EngineError, match="ENFORCE_EAGER"):
        vllm_command(EngineSpec.from_env(env), env={**env, "ENFORCE_EAGER": "maybe"})


def test_worker_vllm_variables_reach_vllm_serve(vllm_install, tiny_base):
    env = {
        "MODEL_NAME": str(tiny_base),
        "OPENAI_SERVED_MODEL_NAME_OVERRIDE": "tutor-x",
        "ENABLE_PREFIX_CACHING": "true",
        "MAX_NUM_SEQS": "8",
        "VLLM_STARTUP_TIMEOUT": "77",
        "VLLM_PYTHON": vllm_install.python,
    }
    spec = EngineSpec.from_env(env)
    assert (spec.model, spec.served_model_name) == (str(tiny_base), "tutor-x")
    assert spec.engine_start_timeout_s == 77
    command, _ = engine_launch(spec, "vllm", env)
    assert command[:3] == [vllm_install.python, "-m", "vllm.entrypoints.openai.api_server"]
    assert "--enable-prefix-caching" in command and "--max-num-seqs" in command
    done = subprocess.run(
        [vllm_install.python, "-c", PARSE, json.dumps(command[3:])],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    args = json.loads(done.stdout.strip().splitlines()[-1])
    assert args["model"] == str(tiny_base) and args["served_model_name"] == ["tutor-x"]
    assert args["enable_prefix_caching"] is True and args["max_num_seqs"] == 8
    assert args["enforce_eager"] is True  # the CPU defaults are still there


def test_ping_is_204_until_the_engine_answers_then_200(gateway_factory, fake_engine):
    down = gateway_factory(engine_url=f"http://127.0.0.1:{free_port()}", connect_timeout_s=1.0)
    answer = httpx.get(down + "/ping", timeout=10)
    assert answer.status_code == 204 and answer.content == b""
    up = gateway_factory(engine_url=fake_engine.url)
    answer = httpx.get(up + "/ping", timeout=10)
    assert answer.status_code == 200 and answer.json() == {"status": "healthy"}


def test_gateway_answers_ping_on_port_health_too(fake_engine, tmp_path):
    port, health = free_port(), free_port()
    env = {**os.environ, "PORT_HEALTH": str(health), "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "tutor.cli", "serve", "--engine-url", fake_engine.url,
            "--port", str(port)]  # fmt: skip
    log = open(tmp_path / "gateway.log", "w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answers = [
                    httpx.get(f"http://127.0.0.1:{p}/ping", timeout=5) for p in (port, health)
                ]
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "gateway.log"
                ).read_text()[-2000:]
                time.sleep(0.2)
        assert [a.status_code for a in answers] == [200, 200]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        log.close()


@pytest.fixture
def fake_runpod(serve_app):
    return FakeRunPod(serve_app)


def test_serve_image_entry_point_takes_a_job_without_mode(fake_runpod, fake_engine, tmp_path):
    """RunPod's queue workers get RUNPOD_WEBHOOK_GET_JOB (and its other webhooks); no MODE."""
    model = tmp_path / "model"
    model.mkdir()
    outer = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_") and k != "MODE"}
    env = {**outer, **fake_runpod.env(), "MODEL": str(model), "ENGINE_URL": fake_engine.url,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(REPO_ROOT)}  # fmt: skip
    log = tmp_path / "entrypoint.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["bash", str(REPO_ROOT / "docker" / "serve_entrypoint.sh")], env=env, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        done = fake_runpod.run("auto-1", {"messages": USER}, proc)
        assert done["output"][0]["choices"][0]["tokens"][0] == "What do you think?"
    finally:
        code = stop_worker(proc, log)
    assert code == 0, log.read_text()[-2000:]
    assert "serve: mode serverless (RUNPOD_WEBHOOK_GET_JOB is set" in log.read_text()
