"""The allocator `socratic train` runs under (trainer.memory): where it is found, when the command
re-executes itself, and (for real) that `socratic train` does so and still reports its errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.memory import (
    ALLOCATORS,
    allocator_env,
    find_allocator,
    loaded_allocator,
    started_as_socratic,
)

ROOT = Path(__file__).resolve().parents[2]


def test_find_allocator_prefers_tcmalloc_minimal(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert find_allocator((str(a), str(b))) is None
    (a / "libjemalloc.so.2").touch()
    assert find_allocator((str(a), str(b))) == a / "libjemalloc.so.2"
    (b / "libtcmalloc_minimal.so.4").touch()
    assert find_allocator((str(a), str(b))) == b / "libtcmalloc_minimal.so.4"


def test_allocator_env() -> None:
    lib = Path("/usr/lib/x/libtcmalloc_minimal.so.4")
    assert allocator_env({"PATH": "/bin"}, lib) == {"PATH": "/bin", "LD_PRELOAD": str(lib)}
    assert allocator_env({"LD_PRELOAD": "/x/libfoo.so"}, lib)["LD_PRELOAD"] == f"{lib} /x/libfoo.so"
    assert allocator_env({}, None) is None  # nothing installed
    assert allocator_env({"SOCRATIC_ALLOCATOR": "system"}, lib) is None  # the user's choice
    assert allocator_env({"LD_PRELOAD": "/opt/libjemalloc.so.2"}, lib) is None  # already one


def test_started_as_socratic() -> None:
    assert started_as_socratic(["/venv/bin/socratic", "train"])
    assert started_as_socratic(["/repo/tutor/cli.py", "train"])  # python -m tutor.cli
    assert not started_as_socratic(["/venv/bin/pytest"])
    assert not started_as_socratic(["/venv/lib/python3.12/site-packages/pytest/__main__.py"])


def test_loaded_allocator_reads_the_maps(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert loaded_allocator(str(maps)) is None
    maps.write_text(maps.read_text() + f"7f02-7f03 r-xp 0 08:01 2 /usr/lib/{ALLOCATORS[0]}\n")
    assert loaded_allocator(str(maps)) == ALLOCATORS[0]
    assert loaded_allocator(str(tmp_path / "missing")) is None


def test_socratic_train_reexecutes_under_tcmalloc(tmp_path: Path) -> None:
    """The real command: it re-runs itself under the installed allocator (once), then fails on the
    missing data file with its usual one-line error."""
    if find_allocator() is None:
        if os.environ.get("CI"):
            pytest.fail("no tcmalloc: apt-get install libtcmalloc-minimal4 (scripts/ci_setup.sh)")
        pytest.skip("no tcmalloc installed (apt-get install libtcmalloc-minimal4)")
    missing = tmp_path / "missing.jsonl"
    cmd = [str(Path(sys.executable).with_name("socratic")), "train", "--config",
           "configs/tiny-cpu.yaml", f"data.train_files=[{missing}]",
           f"train.output_dir={tmp_path / 'run'}"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "SOCRATIC_ALLOCATOR")}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.stdout.count("memory: re-running under libtcmalloc") == 1, out.stdout
    assert out.returncode == 2, out.stderr
    assert "missing.jsonl" in out.stderr.strip().splitlines()[-1]
    env["SOCRATIC_ALLOCATOR"] = "system"
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert "re-running" not in out.stdout and out.returncode == 2
