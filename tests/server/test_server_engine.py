"""Engine command lines (vllm serve for a merged model and for base + LoRA adapter, flags from env,
VLLM_EXTRA_ARGS last and kept out of the engine's environment, the exported chat template, LoRA ranks rounded up to vLLM's, float32 on CPU
behind the CPU build's `python -m` launcher; transformers serve), engine choice, the offline
environment and vLLM's CPU KV cache default, the eos check, and the launcher's failures: an engine
that dies during start-up, one that never becomes healthy, and SIGTERM reaching the whole process
group.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from server.engine import (
    EngineError,
    EngineProcess,
    EngineSpec,
    engine_env,
    resolve_engine,
    stop_token_warning,
    transformers_command,
    upstream_model,
    vllm_command,
    vllm_lora_rank,
)
from tutor.proc import free_port
from tutor.vllm import VLLM_SERVER_MODULE


def test_vllm_command_merged_model_from_env(tmp_path):
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")
    env = {
        "MODEL": str(tmp_path), "SERVED_MODEL_NAME": "tutor", "MAX_MODEL_LEN": "4096",
        "GPU_MEMORY_UTILIZATION": "0.85", "TENSOR_PARALLEL_SIZE": "2", "DTYPE": "bfloat16",
        "QUANTIZATION": "awq", "VLLM_EXTRA_ARGS": "--max-num-seqs 64 --dtype float16", "ENGINE_PORT": "9001",
    }  # fmt: skip
    cmd = vllm_command(EngineSpec.from_env(env))
    assert cmd[:4] == ["vllm", "serve", "--model", str(tmp_path)]
    pairs = dict(zip(cmd[2::2], cmd[3::2], strict=False))
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "9001"
    assert pairs["--served-model-name"] == "tutor"
    assert pairs["--chat-template"] == str(tmp_path / "chat_template.jinja")
    assert pairs["--max-model-len"] == "4096" and pairs["--gpu-memory-utilization"] == "0.85"
    assert pairs["--tensor-parallel-size"] == "2" and pairs["--quantization"] == "awq"
    assert cmd[-4:] == ["--max-num-seqs", "64", "--dtype", "float16"]  # extra args last: they win
    assert "--enable-lora" not in cmd
    # On the command line only: vLLM warns about unknown VLLM_* variables in its environment.
    assert "VLLM_EXTRA_ARGS" not in engine_env(EngineSpec.from_env(env), env)


def test_one_flag_builder_for_gpu_and_cpu(tmp_path):
    spec = EngineSpec(model=str(tmp_path), max_model_len=2048)
    gpu = vllm_command(spec)
    cpu = vllm_command(spec, ("/venv/bin/python", "-m", VLLM_SERVER_MODULE), cpu=True)
    assert cpu[:3] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    # the same flags; CPU: float32 and the CPU build's defaults (tutor.vllm.CPU_FLAGS)
    cpu_only = ["--dtype", "float32", "--no-enable-chunked-prefill"]
    cpu_only += ["--max-num-batched-tokens", "2048", "--enforce-eager"]
    assert cpu[3:] == [*gpu[2:], *cpu_only]
    assert "--dtype" not in gpu and "--enforce-eager" not in gpu
    eager_off = EngineSpec(model=str(tmp_path), vllm_extra_args="--no-enforce-eager")
    assert "--enforce-eager" not in vllm_command(eager_off, cpu=True)  # the user's choice wins
    bf16 = vllm_command(EngineSpec(model=str(tmp_path), dtype="bfloat16"), cpu=True)
    assert bf16[bf16.index("--dtype") + 1] == "bfloat16"  # DTYPE wins


@pytest.mark.parametrize(
    "rank, allowed", [(1, 1), (2, 8), (16, 16), (24, 32), (64, 64), (300, 320), (321, 512)]
)
def test_lora_rank_rounded_up_to_one_vllm_accepts(rank, allowed):
    assert vllm_lora_rank(rank) == allowed


def test_lora_rank_rounding_in_the_command(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 24}))
    cmd = vllm_command(EngineSpec(model="m", lora_adapter=str(tmp_path)))
    assert cmd[cmd.index("--max-lora-rank") + 1] == "32"
    cmd = vllm_command(EngineSpec(model="m", lora_adapter=str(tmp_path), max_lora_rank=100))
    assert cmd[cmd.index("--max-lora-rank") + 1] == "128"
    with pytest.raises(EngineError, match="above vLLM's largest, 512"):
        vllm_lora_rank(1024)


def test_vllm_command_lora_adapter(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 32}))
    spec = EngineSpec(model="Qwen/Qwen2.5-7B-Instruct", lora_adapter=str(tmp_path))
    cmd = vllm_command(spec)
    assert "--enable-lora" in cmd
    assert cmd[cmd.index("--lora-modules") + 1] == f"socratic-tutor={tmp_path}"
    assert cmd[cmd.index("--max-lora-rank") + 1] == "32"
    assert cmd[cmd.index("--served-model-name") + 1] == "socratic-tutor-base"
    assert upstream_model(spec, "vllm") == "socratic-tutor"  # requests go to the adapter
    assert "--max-model-len" not in cmd  # unset settings are left to vLLM


def test_transformers_command_and_env(tmp_path):
    spec = EngineSpec(model=str(tmp_path), engine_port=9100)
    cmd = transformers_command(spec, python="py")
    assert cmd[:5] == ["py", "-m", "transformers.cli.transformers", "serve", str(tmp_path)]
    assert cmd[cmd.index("--port") + 1] == "9100" and cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert upstream_model(spec, "transformers") is None
    env = engine_env(spec, {"PATH": "/bin"})
    assert env["HF_HUB_OFFLINE"] == "1" and env["PATH"] == "/bin"
    assert "HF_HUB_OFFLINE" not in engine_env(EngineSpec(model="Qwen/Qwen2.5-7B-Instruct"), {})
    assert "VLLM_CPU_KVCACHE_SPACE" not in env
    assert engine_env(spec, {}, vllm_cpu=True)["VLLM_CPU_KVCACHE_SPACE"] == "1"  # GiB
    kv = {"VLLM_CPU_KVCACHE_SPACE": "8"}
    assert engine_env(spec, kv, vllm_cpu=True)["VLLM_CPU_KVCACHE_SPACE"] == "8"
    with pytest.raises(EngineError, match="merged models only"):
        transformers_command(EngineSpec(model=str(tmp_path), lora_adapter=str(tmp_path)))


def test_engine_choice():
    assert resolve_engine("auto", vllm=True) == "vllm"
    assert resolve_engine("auto", vllm=False) == "transformers"
    assert resolve_engine("vllm", vllm=False) == "vllm"
    assert resolve_engine("transformers", vllm=True) == "transformers"
    with pytest.raises(EngineError):
        resolve_engine("tgi")
    with pytest.raises(EngineError, match="MODEL"):
        EngineSpec.from_env({})
    with pytest.raises(EngineError, match="ENGINE_PORT"):
        EngineSpec.from_env({"MODEL": "m", "ENGINE_PORT": "eighty"})


def test_stop_token_warning(tmp_path, tiny_base):
    assert stop_token_warning(str(tiny_base)) is None
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    assert "<|im_end|>" in stop_token_warning(str(tmp_path))


def test_engine_dying_at_start_fails_fast_with_its_log():
    script = "print('loading weights'); print('CUDA error: out of memory', flush=True); raise SystemExit(3)"
    engine = EngineProcess(
        [sys.executable, "-c", script], {}, f"http://127.0.0.1:{free_port()}/health", echo=False
    )
    engine.start()
    started = time.monotonic()
    with pytest.raises(EngineError, match="code 3") as info:
        engine.wait_healthy(timeout_s=60)
    assert time.monotonic() - started < 15
    assert "CUDA error: out of memory" in str(info.value)


def test_engine_start_timeout_is_clear():
    script = "import time; print('still loading', flush=True); time.sleep(60)"
    engine = EngineProcess(
        [sys.executable, "-c", script], {}, f"http://127.0.0.1:{free_port()}/health", echo=False
    )
    engine.start()
    with pytest.raises(EngineError, match="not healthy .* within 1 s") as info:
        engine.wait_healthy(timeout_s=1.0)
    assert "ENGINE_START_TIMEOUT_S" in str(info.value) and "still loading" in str(info.value)
    assert not engine.alive  # the timed-out engine was stopped


def test_sigterm_reaches_the_process_group(tmp_path):
    marker = tmp_path / "child-got-sigterm"
    child = (
        "import signal, sys, time, pathlib\n"
        f"signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path({str(marker)!r}).touch(), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
    engine = EngineProcess([sys.executable, "-c", parent], {}, "http://unused", echo=False)
    engine.start()
    for _ in range(100):
        if "ready" in engine.lines:
            break
        time.sleep(0.1)
    engine.stop(grace_s=5)
    for _ in range(50):  # the grandchild (like vLLM's workers) got SIGTERM too
        if marker.exists():
            break
        time.sleep(0.1)
    assert marker.exists()


def test_watcher_restarts_a_dead_engine_then_gives_up(tmp_path):
    """An engine that serves /health for a second and dies: restarted once, then the gateway stops."""
    from types import SimpleNamespace

    from server.launch import watch_engine

    port = free_port()
    script = (
        "import http.server, threading, time\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self): self.send_response(200); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        f"s = http.server.HTTPServer(('127.0.0.1', {port}), H)\n"
        "threading.Thread(target=s.serve_forever, daemon=True).start()\n"
        "print('serving', flush=True); time.sleep(1.5); print('segfault', flush=True)\n"
        "raise SystemExit(139)\n"
    )
    engine = EngineProcess(
        [sys.executable, "-c", script], {}, f"http://127.0.0.1:{port}/health", echo=False
    )
    engine.start()
    engine.wait_healthy(30)
    server, state = SimpleNamespace(should_exit=False), {}
    spec = EngineSpec(model="m", engine_start_timeout_s=30)
    watch_engine(engine, spec, server, max_restarts=1, state=state)
    assert server.should_exit and state["failed"]
    assert list(engine.lines).count("serving") == 2  # started, then restarted once
    assert engine.lines[-1] == "segfault"
