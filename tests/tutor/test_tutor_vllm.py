"""`tutor.vllm`: the batch runner launched from the same vLLM as the server (a Python, `vllm serve`,
VLLM_CMD), how its CPU build is recognised (a real probe of the interpreter), and the CPU defaults
added only for flags the user did not give. Discovery order: tests/server/test_server_vllm_install.py."""

from __future__ import annotations

import sys

import pytest

from tutor import vllm


def test_the_batch_runner_is_the_same_vllm_as_the_server() -> None:
    python = vllm.VllmInstall(
        ("/v/bin/python", "-m", vllm.VLLM_SERVER_MODULE), "VLLM_PYTHON", "/v/bin/python"
    )
    assert vllm.batch_launcher(python) == ("/v/bin/python", "-m", vllm.RUN_BATCH_MODULE)
    assert vllm.batch_launcher(vllm.VllmInstall(("vllm", "serve"), "PATH")) == ("vllm", "run-batch")
    cmd = vllm.VllmInstall(("/o/bin/vllm", "serve"), "VLLM_CMD")
    assert vllm.batch_launcher(cmd) == ("/o/bin/vllm", "run-batch")
    module = vllm.VllmInstall(("py", "-m", vllm.VLLM_SERVER_MODULE), "VLLM_CMD")
    assert vllm.batch_launcher(module) == ("py", "-m", vllm.RUN_BATCH_MODULE)
    with pytest.raises(vllm.VllmError, match="VLLM_CMD my-wrapper: cannot tell"):
        vllm.batch_launcher(vllm.VllmInstall(("my-wrapper",), "VLLM_CMD"))
    assert "VLLM_CMD" in vllm.describe(cmd) and "/o/bin/vllm serve" in vllm.describe(cmd)


def test_this_python_is_not_the_cpu_build_and_gets_no_defaults() -> None:
    probe = vllm.probe_vllm(sys.executable)  # the project's venv never holds vllm
    assert probe["module"] is False and probe["cpu"] is None
    assert "error" in vllm.probe_vllm("/no/such/python")
    assert vllm.engine_flags(["--tensor-parallel-size", "4"], cpu=False) == (
        ["--tensor-parallel-size", "4"],
        {},
    )


@pytest.mark.parametrize(
    "user, expected",
    [
        ([], ["--dtype", "float32", "--max-model-len", "2048", "--no-enable-chunked-prefill",
              "--max-num-batched-tokens", "2048", "--enforce-eager"]),
        (["--max-model-len=4096", "--dtype", "bfloat16"],
         ["--max-model-len=4096", "--dtype", "bfloat16", "--no-enable-chunked-prefill",
          "--max-num-batched-tokens", "4096", "--enforce-eager"]),
        (["--enable-chunked-prefill", "--no-enforce-eager"],
         ["--enable-chunked-prefill", "--no-enforce-eager", "--dtype", "float32",
          "--max-model-len", "2048", "--max-num-batched-tokens", "2048"]),
    ],
)  # fmt: skip
def test_cpu_defaults_fill_only_what_is_missing(monkeypatch, user, expected) -> None:
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    flags, env = vllm.engine_flags(user, cpu=True)
    assert flags == expected and env == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "4")
    assert vllm.engine_flags(user, cpu=True)[1] == {}


def test_max_model_len_is_read_from_the_flags() -> None:
    assert vllm.max_model_len(["--max-model-len", "2048"]) == 2048
    assert vllm.max_model_len(["--max-model-len=8192", "--dtype", "float32"]) == 8192
    assert vllm.max_model_len(["--dtype", "float32"]) is None
