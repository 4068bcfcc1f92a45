"""Bad configuration is caught before anything starts: `handler.py` checks every setting before the
engine loads (one line naming the variable, no engine left behind), `socratic serve` names
ENGINE_MAX_RESTARTS and a missing model directory in one line, and sampling numbers that are not
finite (NaN, inf) are 400 `out_of_range` like any other out-of-range value.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.chat_request import RequestError, normalize_chat_request
from server.engine import EngineError, EngineSpec
from server.settings import Settings
from tutor.paths import REPO_ROOT
from tutor.proc import free_port

SOCRATIC = [str(Path(sys.executable).parent / "socratic")]
USER = [{"role": "user", "content": "Why is the sky blue?"}]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"SYSTEM_PROMPT_POLICY": "bogus"},
        {"MAX_CONCURRENCY": "abc"},
        {"ENGINE_START_TIMEOUT_S": "x"},
        {"ENGINE_URL": "http://127.0.0.1:9", "ENGINE_START_TIMEOUT_S": "x"},
    ],
)
def test_handler_rejects_bad_settings_before_starting_the_engine(tiny_base, bad):
    engine_port = free_port()
    env = {**os.environ, "MODEL": str(tiny_base), "ENGINE": "transformers",
           "ENGINE_PORT": str(engine_port), **bad}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "handler.py"], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    [name] = [k for k in bad if k != "ENGINE_URL"]
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith(f"handler: {name}:"), done.stderr
    assert "engine_starting" not in done.stdout + done.stderr  # found before the model loads
    assert not listening(engine_port)


def test_serve_names_engine_max_restarts(tiny_base):
    env = {**os.environ, "ENGINE_MAX_RESTARTS": "abc"}
    done = subprocess.run(
        [*SOCRATIC, "serve", "--model", str(tiny_base), "--engine", "transformers"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]  # a warning printed under load may precede it
    assert last == "socratic: error: ENGINE_MAX_RESTARTS: expected a number, got 'abc'"


@pytest.mark.parametrize("flag", ["--model", "--lora-adapter"])
def test_serve_missing_model_dir_is_one_line(tiny_base, tmp_path, flag):
    missing = str(tmp_path / "nonexistent" / "dir")
    model = missing if flag == "--model" else str(tiny_base)
    cmd = [*SOCRATIC, "serve", "--model", model, "--engine", "transformers"]
    if flag == "--lora-adapter":
        cmd += ["--lora-adapter", missing]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    name = flag[2:].replace("-", "_").upper()
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"socratic: error: {name}: no such directory: {missing}"


@pytest.mark.parametrize(
    "model", ["/nonexistent/dir", "./nope", "../nope", "~/nope-socratic", "runs/tiny/merged"]
)
def test_local_looking_model_must_exist(model):
    with pytest.raises(EngineError, match=f"^MODEL: no such directory: {model}$"):
        EngineSpec.from_env({"MODEL": model})


def test_hub_ids_and_existing_dirs_pass(tmp_path, monkeypatch):
    for hub_id in ("Qwen/Qwen2.5-7B-Instruct", "gpt2"):
        assert EngineSpec.from_env({"MODEL": hub_id}).model == hub_id
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "tutor").mkdir()
    assert EngineSpec.from_env({"MODEL": "~/tutor"}).model == str(tmp_path / "tutor")


@pytest.mark.parametrize(
    "name, value",
    [("temperature", float("nan")), ("top_p", float("nan")), ("temperature", float("inf")),
     ("presence_penalty", float("-inf")), ("frequency_penalty", float("nan"))],
)  # fmt: skip
def test_non_finite_sampling_numbers_are_out_of_range(name, value):
    with pytest.raises(RequestError) as err:
        normalize_chat_request({"messages": USER, name: value}, Settings())
    assert (err.value.status, err.value.code, err.value.param) == (400, "out_of_range", name)


def test_empty_system_prompt_variable_keeps_the_trained_prompt(tmp_path):
    """`.env.example` sets SYSTEM_PROMPT= (empty): tutor.json's prompt must still win."""
    (tmp_path / "tutor.json").write_text('{"system_prompt": "Ask, never tell."}')
    settings = Settings.from_env({"MODEL": str(tmp_path), "SYSTEM_PROMPT": ""})
    assert settings.system_prompt == "Ask, never tell."
    assert Settings.from_env({"SYSTEM_PROMPT": "Be brief."}).system_prompt == "Be brief."
