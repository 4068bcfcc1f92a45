"""Finding vLLM on this machine without importing it: the command that starts its OpenAI server
and whether it can run here.

    install = check_vllm(find_vllm())     # VllmError: one line naming what is missing
    install.launcher                      # ("vllm", "serve") or (python, "-m", VLLM_SERVER_MODULE)

Order: VLLM_CMD (shell-split, e.g. `vllm serve`), VLLM_PYTHON (a Python with vLLM installed),
the checkout's `.venv-vllm` (`make vllm`: vLLM's CPU build), then `vllm` on PATH (the GPU image).
vllm-cpu's own `vllm` script fails (its package metadata is named vllm-cpu), so a Python runs
`-m vllm.entrypoints.openai.api_server`, which takes the same flags as `vllm serve`.
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

from tutor.vllm import VENV_PYTHON

VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"  # takes `vllm serve`'s flags
CHECKOUT_VLLM_PYTHON = VENV_PYTHON  # the checkout's .venv-vllm, built by `make vllm`
VLLM_INSTALL = "install it with `make vllm` (vLLM's CPU build in .venv-vllm) or set VLLM_PYTHON"
# PyPI's builds of these break transformers' model imports next to vLLM's CPU torch.
VLLM_CPU_CONFLICTS = ("torchvision", "torchaudio", "torchcodec")


class VllmError(RuntimeError):
    """vLLM is missing or cannot run; the message says how to install it."""


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
    env: Mapping[str, str] | None = None, checkout_python: Path = CHECKOUT_VLLM_PYTHON
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


def check_vllm(install: VllmInstall | None) -> VllmInstall:
    """`install` when it can run, else VllmError: one line naming what is missing and how to
    install it. A launcher without a known Python (VLLM_CMD, PATH) is taken as it is."""
    if install is None:
        raise VllmError(
            "ENGINE=vllm: vLLM not found (no VLLM_CMD, VLLM_PYTHON, .venv-vllm in the checkout "
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
