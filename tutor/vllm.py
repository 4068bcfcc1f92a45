"""Finding vLLM without importing it (it runs in a venv of its own), how to launch its server and
its batch runner, and the flags its CPU build needs: the one locator for `socratic serve`, the
RunPod handler, `socratic data generate --batch vllm` and the benchmarks.

    install = check_vllm(find_vllm())     # VllmError: one line naming what is missing
    install.launcher                      # ("vllm", "serve") or (python, "-m", VLLM_SERVER_MODULE)
    batch_launcher(install)               # ("vllm", "run-batch") or (python, "-m", RUN_BATCH_MODULE)

Order: VLLM_CMD (shell-split, e.g. `vllm serve`), VLLM_PYTHON (a Python with vLLM installed),
the checkout's `.venv-vllm` (`make vllm`: vLLM's CPU build), then `vllm` on PATH (the GPU image).
vllm-cpu's own `vllm` script fails (its package metadata is named vllm-cpu), so a Python runs
`-m vllm.entrypoints.openai.api_server`, which takes the same flags as `vllm serve`.

`engine_flags(user_flags, cpu)` adds the CPU build's defaults for every flag the user did not
give (`vllm_on_cpu` says when: one metadata probe of the interpreter). Seeded sampling (the
generator sends a per-request seed) crashes vLLM-CPU's engine when a prompt is prefilled in chunks
("CPU Generator does not use offset"), so chunked prefill is off there and a whole prompt fits in
one step. Eager mode skips torch.compile: measured on 2 busy cores with SmolLM2-135M, engine
start-up 1.7 s instead of 240-350 s (this build also fails to reload its compile cache), and the
same 4-request batch took 76 s against 78 s compiled.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutor.errors import UserError
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


def engine_flags(user_flags: list[str], cpu: bool) -> tuple[list[str], dict[str, str]]:
    """The user's flags plus, on CPU (`vllm_on_cpu`), the CPU build's defaults for the ones not
    given; and the environment variables to add (never overriding the caller's)."""
    if not cpu:
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


VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"  # takes `vllm serve`'s flags
VLLM_INSTALL = "install it with `make vllm` (vLLM's CPU build in .venv-vllm) or set VLLM_PYTHON"
# PyPI's builds of these break transformers' model imports next to vLLM's CPU torch.
VLLM_CPU_CONFLICTS = ("torchvision", "torchaudio", "torchcodec")


class VllmError(UserError, RuntimeError):
    """vLLM is missing or cannot run; the message says how to install it."""

    exit_code = 1


def has_cuda() -> bool:
    """A CUDA device is visible (torch when installed, else the NVIDIA device nodes)."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        return torch.cuda.is_available()
    return Path("/dev/nvidiactl").exists()


@dataclass(frozen=True)
class VllmInstall:
    """A vLLM found on this machine: the command in front of the flags, where it was found
    (VLLM_CMD | VLLM_PYTHON | .venv-vllm | PATH) and the Python that runs it, when known."""

    launcher: tuple[str, ...]
    source: str
    python: str | None = None


def find_vllm(
    env: Mapping[str, str] | None = None, checkout_python: Path = VENV_PYTHON
) -> VllmInstall | None:
    """The first of VLLM_CMD, VLLM_PYTHON, the checkout's .venv-vllm and `vllm` on PATH."""
    env = os.environ if env is None else env
    if env.get("VLLM_CMD", "").strip():
        return VllmInstall(tuple(shlex.split(env["VLLM_CMD"])), "VLLM_CMD")
    python = env.get("VLLM_PYTHON", "").strip()
    if python:
        return VllmInstall((python, "-m", VLLM_SERVER_MODULE), "VLLM_PYTHON", python)
    if checkout_python.exists():
        python = str(checkout_python)
        return VllmInstall((python, "-m", VLLM_SERVER_MODULE), ".venv-vllm", python)
    if shutil.which("vllm"):
        return VllmInstall(("vllm", "serve"), "PATH")
    return None


# Package metadata only (no vllm import, a fraction of a second): is vllm there, which build.
_PROBE = f"""
import importlib.metadata as md, importlib.util as iu, json
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
print(json.dumps({{"module": iu.find_spec("vllm") is not None, "cpu": version("vllm-cpu"),
                  "conflicts": [n for n in {VLLM_CPU_CONFLICTS!r} if version(n)]}}))
"""


@functools.lru_cache(maxsize=8)
def probe_vllm(python: str) -> dict[str, Any]:
    """{"module": vllm importable, "cpu": the vllm-cpu version or None, "conflicts": [...]}, or
    {"error": why the Python did not run}."""
    try:
        done = subprocess.run(
            [python, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {done.returncode}"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"unexpected output {done.stdout[-200:]!r}"}


def check_vllm(install: VllmInstall | None, context: str = "ENGINE=vllm") -> VllmInstall:
    """`install` when it can run, else VllmError: one line naming what is missing and how to
    install it. A launcher without a known Python (VLLM_CMD, PATH) is taken as it is."""
    if install is None:
        raise VllmError(
            f"{context}: vLLM not found (no VLLM_CMD, VLLM_PYTHON, .venv-vllm in the checkout "
            f"or `vllm` on PATH); {VLLM_INSTALL}"
        )
    if install.python is None:
        return install
    where = f"{install.source} {install.python}"
    if not os.access(install.python, os.X_OK):
        raise VllmError(f"{where}: no such Python; {VLLM_INSTALL}")
    info = probe_vllm(install.python)
    if "error" in info:
        raise VllmError(f"{where}: does not run ({info['error']}); {VLLM_INSTALL}")
    if not info["module"]:
        raise VllmError(f"{where}: has no vllm package; {VLLM_INSTALL}")
    if info["cpu"] and info["conflicts"]:
        names = " ".join(info["conflicts"])
        raise VllmError(
            f"{where}: {names} break transformers next to vLLM's CPU torch; "
            f"remove them: {install.python} -m pip uninstall -y {names}"
        )
    return install


def vllm_usable(install: VllmInstall | None, cuda: bool | None = None) -> bool:
    """For `auto`: a vLLM chosen by VLLM_CMD or VLLM_PYTHON, a working CPU build, or any vLLM
    with CUDA visible."""
    if install is None:
        return False
    if install.source in ("VLLM_CMD", "VLLM_PYTHON"):
        return True
    if install.python is not None:
        try:
            check_vllm(install)
        except VllmError:
            return False
        if probe_vllm(install.python)["cpu"]:
            return True
    return has_cuda() if cuda is None else cuda


def vllm_on_cpu(install: VllmInstall) -> bool:
    """vLLM's CPU build, or any vLLM where no CUDA device is visible."""
    return bool(install.python and probe_vllm(install.python).get("cpu")) or not has_cuda()


RUN_BATCH_MODULE = "vllm.entrypoints.openai.run_batch"  # `vllm run-batch`


def batch_launcher(install: VllmInstall) -> tuple[str, ...]:
    """The command in front of the batch runner's flags, for the same vLLM as `install.launcher`:
    a Python runs RUN_BATCH_MODULE; `vllm serve` becomes `vllm run-batch`."""
    if install.python is not None:
        return (install.python, "-m", RUN_BATCH_MODULE)
    launcher = install.launcher
    if launcher and launcher[-1] == "serve":
        return (*launcher[:-1], "run-batch")
    if VLLM_SERVER_MODULE in launcher:
        return tuple(RUN_BATCH_MODULE if part == VLLM_SERVER_MODULE else part for part in launcher)
    raise VllmError(
        f"{install.source} {shlex.join(launcher)}: cannot tell how to run vLLM's batch runner from "
        "it; set VLLM_PYTHON to the Python of a venv with vllm"
    )


def describe(install: VllmInstall) -> str:
    """One line for error messages: which vLLM and where it came from."""
    what = install.python or shlex.join(install.launcher)
    return f"{what} ({install.source}; set VLLM_PYTHON to the Python of a venv with vllm)"
