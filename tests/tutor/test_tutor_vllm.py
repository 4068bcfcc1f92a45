"""`tutor.vllm`: which Python runs vLLM ($VLLM_PYTHON, the checkout's .venv-vllm, this one), how
its CPU build is recognised (a real probe of the interpreter), and the CPU defaults added only for
flags the user did not give."""

from __future__ import annotations

import sys

import pytest

from tutor import vllm


def test_vllm_python_prefers_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("VLLM_PYTHON", "/opt/vllm/bin/python")
    assert vllm.vllm_python() == "/opt/vllm/bin/python"
    monkeypatch.delenv("VLLM_PYTHON")
    expected = str(vllm.VENV_PYTHON) if vllm.VENV_PYTHON.exists() else sys.executable
    assert vllm.vllm_python() == expected
    assert "VLLM_PYTHON" in vllm.describe("x")


def test_this_python_is_not_the_cpu_build_and_gets_no_defaults() -> None:
    assert vllm.is_cpu_build(sys.executable) is False  # the project's venv never holds vllm
    assert vllm.is_cpu_build("/no/such/python") is False
    assert vllm.engine_flags(sys.executable, ["--tensor-parallel-size", "4"]) == (
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
    monkeypatch.setattr(vllm, "is_cpu_build", lambda python: True)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    flags, env = vllm.engine_flags("python", user)
    assert flags == expected and env == {"VLLM_CPU_KVCACHE_SPACE": "1"}
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "4")
    assert vllm.engine_flags("python", user)[1] == {}


def test_max_model_len_is_read_from_the_flags() -> None:
    assert vllm.max_model_len(["--max-model-len", "2048"]) == 2048
    assert vllm.max_model_len(["--max-model-len=8192", "--dtype", "float32"]) == 8192
    assert vllm.max_model_len(["--dtype", "float32"]) is None
