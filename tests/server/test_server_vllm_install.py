"""Finding vLLM without importing it: VLLM_CMD, then VLLM_PYTHON, then the checkout's .venv-vllm,
then `vllm` on PATH; a missing or broken install (no such Python, no vllm package, PyPI's
torchvision next to the CPU build) is one line naming what is missing and how to install it, from
the module and from `socratic serve --engine vllm`; what `auto` picks for each kind of install.
Fake Pythons (shell scripts printing the probe's answer) stand in for real installs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tutor.vllm import (
    VLLM_SERVER_MODULE,
    VllmError,
    VllmInstall,
    check_vllm,
    find_vllm,
    probe_vllm,
    vllm_on_cpu,
    vllm_usable,
)

SOCRATIC = [str(Path(sys.executable).parent / "socratic")]


def fake_python(tmp_path: Path, answer: dict, name: str = "python") -> str:
    """A 'Python' that answers the metadata probe with `answer`."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\necho '{json.dumps(answer)}'\n")
    path.chmod(0o755)
    probe_vllm.cache_clear()
    return str(path)


CPU_BUILD = {"module": True, "cpu": "0.32.0", "conflicts": []}


def test_discovery_order(tmp_path, monkeypatch):
    venv = Path(fake_python(tmp_path, CPU_BUILD))
    missing = tmp_path / "nowhere" / "python"
    env = {"VLLM_CMD": "/opt/vllm/bin/vllm serve", "VLLM_PYTHON": "/x/python"}
    assert find_vllm(env, venv) == VllmInstall(("/opt/vllm/bin/vllm", "serve"), "VLLM_CMD")
    env.pop("VLLM_CMD")
    assert find_vllm(env, venv).launcher == ("/x/python", "-m", VLLM_SERVER_MODULE)
    assert find_vllm({}, venv) == VllmInstall(
        (str(venv), "-m", VLLM_SERVER_MODULE), ".venv-vllm", str(venv)
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vllm").write_text("#!/bin/sh\n")
    (bin_dir / "vllm").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert find_vllm({}, missing) == VllmInstall(("vllm", "serve"), "PATH")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_vllm({}, missing) is None


def test_missing_or_broken_install_is_one_line(tmp_path):
    cases = [
        (None, "vLLM not found"),
        (VllmInstall(("p",), "VLLM_PYTHON", str(tmp_path / "nope")), "no such Python"),
        (VllmInstall(("p",), ".venv-vllm", sys.executable), "has no vllm package"),
    ]
    for install, expected in cases:
        with pytest.raises(VllmError) as info:
            check_vllm(install)
        message = str(info.value)
        assert expected in message and "make vllm" in message and "\n" not in message


def test_torchvision_next_to_the_cpu_build_is_named(tmp_path):
    python = fake_python(tmp_path, {**CPU_BUILD, "conflicts": ["torchvision", "torchaudio"]})
    with pytest.raises(VllmError) as info:
        check_vllm(VllmInstall((python,), ".venv-vllm", python))
    assert f"{python} -m pip uninstall -y torchvision torchaudio" in str(info.value)
    gpu = fake_python(tmp_path, {"module": True, "cpu": None, "conflicts": ["torchvision"]}, "py2")
    assert check_vllm(VllmInstall((gpu,), "VLLM_PYTHON", gpu))  # CUDA builds ship their own


def test_what_auto_takes(tmp_path):
    cpu = fake_python(tmp_path, CPU_BUILD)
    gpu = fake_python(tmp_path, {"module": True, "cpu": None, "conflicts": []}, "py2")
    assert vllm_usable(VllmInstall((cpu,), ".venv-vllm", cpu), cuda=False)
    assert vllm_on_cpu(VllmInstall((cpu,), ".venv-vllm", cpu))
    assert not vllm_usable(VllmInstall((gpu,), ".venv-vllm", gpu), cuda=False)
    assert vllm_usable(VllmInstall((gpu,), ".venv-vllm", gpu), cuda=True)
    assert not vllm_usable(VllmInstall(("vllm", "serve"), "PATH"), cuda=False)
    assert vllm_usable(VllmInstall(("vllm", "serve"), "PATH"), cuda=True)
    assert vllm_usable(VllmInstall(("my-vllm",), "VLLM_CMD"), cuda=False)  # asked for
    broken = VllmInstall((sys.executable,), ".venv-vllm", sys.executable)  # no vllm in it
    assert not vllm_usable(broken, cuda=True)
    assert not vllm_usable(None, cuda=True)


def test_serve_names_a_missing_vllm_in_one_line(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    env = {**os.environ, "VLLM_PYTHON": str(tmp_path / "no-venv" / "bin" / "python")}
    env.pop("VLLM_CMD", None)
    done = subprocess.run(
        [*SOCRATIC, "serve", "--model", str(model), "--engine", "vllm"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("socratic: error: VLLM_PYTHON ") and "no such Python" in last
    assert "make vllm" in last
