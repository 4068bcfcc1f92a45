"""The real entry points end to end: `socratic serve` (transformers engine + gateway, settings from
flags and env) with `socratic chat` driven through stdin (streamed answers, multi-turn, /reset,
unknown commands, /quit), then SIGTERM stopping gateway and engine; the gateway alone in front of
an engine already running (`--engine-url`); `--help` texts; a clear error for a model directory
that does not load.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tutor.proc import free_port, spawned

SOCRATIC = [str(Path(sys.executable).parent / "socratic")]


@pytest.fixture(scope="module")
def served(tiny_base, tmp_path_factory):
    port, engine_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "ENGINE_PORT": str(engine_port), "MAX_TOKENS_CAP": "64"}
    cmd = [
        *SOCRATIC,
        "serve",
        "--model",
        str(tiny_base),
        "--engine",
        "transformers",
        "--port",
        str(port),
    ]
    url = f"http://127.0.0.1:{port}"
    with spawned(cmd, url + "/ready", 300, env=env, log=log, poll_s=0.5) as proc:
        yield url, proc, engine_port, log


def test_chat_session_through_stdin(served):
    url, _, _, log = served
    script = (
        "Why is the sky blue?\nAnd at sunset?\n/help\n/reset\nWhat is a prime?\n/quit\nnever sent\n"
    )
    done = subprocess.run(
        [*SOCRATIC, "chat", "--url", url, "--max-tokens", "5"],
        input=script, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("Chatting with socratic-tutor at")
    assert out.count("tutor> ") == 3 and "[error]" not in out
    assert "unknown command '/help'" in out and "(new conversation)" in out
    answers = [part.split("\n")[0] for part in out.split("tutor> ")[1:]]
    assert all(a.strip() for a in answers)
    # the gateway's request log: the second turn carried the history, the one after /reset did not
    prompts = [line for line in log.read_text().splitlines() if '"event": "chat"' in line]
    tokens = [int(line.split('"prompt_tokens": ')[1].split(",")[0]) for line in prompts[-3:]]
    assert tokens[1] > tokens[0] + 5 and tokens[2] < tokens[1]


def test_serve_enforces_flag_and_env_limits(served):
    resp = httpx.post(
        served[0] + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 65},
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "max_tokens_too_large"


def test_sigterm_stops_gateway_and_engine(served):
    url, proc, engine_port, log = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
    for port in (url.rsplit(":", 1)[1], engine_port):
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_chat_reports_unreachable_gateway():
    done = subprocess.run(
        [*SOCRATIC, "chat", "--url", f"http://127.0.0.1:{free_port()}"],
        input="", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "cannot list models" in done.stderr


def test_serve_bad_model_dir_fails_with_engine_log(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    done = subprocess.run(
        [*SOCRATIC, "serve", "--model", str(tmp_path), "--engine", "transformers", "--engine-port", str(free_port())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()
    assert any(line.startswith("socratic: error: the engine exited with code") for line in last)


@pytest.mark.parametrize("command", ["serve", "chat"])
def test_help(command):
    env = {**os.environ, "COLUMNS": "300"}  # one line per option
    done = subprocess.run([*SOCRATIC, command, "--help"], capture_output=True, text=True, env=env)
    assert done.returncode == 0
    expected = ["env MODEL", "env API_KEYS", "env REQUEST_TIMEOUT_S", "default 8000", "tokens"]
    for text in expected if command == "serve" else ["default http://127.0.0.1:8000", "/reset"]:
        assert text in done.stdout


def test_serve_gateway_only_in_front_of_a_running_engine(fake_engine, tmp_path):
    """`--engine-url`: no engine is started; the gateway proxies to the one given."""
    port = free_port()
    cmd = [*SOCRATIC, "serve", "--engine-url", fake_engine.url, "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with spawned(cmd, url + "/ready", 60, log=tmp_path / "serve.log", poll_s=0.2) as proc:
        before = len(fake_engine.bodies)
        body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
        reply = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
        assert reply.status_code == 200 and reply.json()["model"] == "socratic-tutor"
        assert fake_engine.bodies[before]["messages"][0]["role"] == "system"  # tutor prompt added
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
