"""The prepared GPU check without a GPU: `scripts/gpu_check.sh --dry-run` prints the steps and the
exact `socratic train` commands (both backends, packing, the unsloth run exporting), the wheels
this interpreter lacks at their constraints.txt pins with the pip download line, and the carry
limit, and writes nothing; `--help`; which wheels count as missing (exact pins only where the
version matters); wheel slimming (bitsandbytes' CUDA 13.0 library, unsloth without studio/); how
wheels split over device calls; and that the run itself refuses a machine without CUDA.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile

import pytest

from bench import deploy_check
from tutor.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "gpu_check.sh"


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHON": sys.executable, **env}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=full, timeout=120
    )


def test_dry_run_prints_the_plan_and_what_to_carry(tmp_path):
    out = tmp_path / "gpu-check"
    done = run_script("--dry-run", "--bare", str(out))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for backend, export in (("hf", "false"), ("unsloth", "true")):
        line = next(x for x in text.splitlines() if f"train.backend={backend}" in x)
        assert "-m trainer.cli train --config configs/qwen2.5-7b-qlora.yaml" in line
        assert "data.packing=true" in line and f"export.after_train={export}" in line
    assert "export (child process) + verify" in text and f"< {deploy_check.BUDGET_S:g} s" in text
    dpo = next(x for x in text.splitlines() if "configs/qwen2.5-7b-dpo-qlora.yaml" in x)
    assert "train.backend=unsloth" in dpo and "dpo.sft_run=" in dpo and "/unsloth " in dpo + " "
    assert deploy_check.BUDGET_S <= 600  # one device call
    pins = deploy_check.pins()
    for name in ("unsloth", "unsloth-zoo", "bitsandbytes", "transformers", "peft", "pyarrow"):
        assert f"  {name}=={pins[name]}" in text, name
    assert "xformers" not in text  # not used: unsloth runs without it
    download = next(x for x in text.splitlines() if "-m pip download" in x)
    assert "--only-binary=:all: --python-version 3.12" in download and "-d " in download
    assert f"unsloth=={pins['unsloth']}" in download
    assert "carry limit 64 MiB per call" in text
    assert not out.exists()


def test_help_names_units_and_defaults():
    done = run_script("--help")
    assert done.returncode == 0
    for needed in ("570 s", "64 MiB", "reports/gpu-check", "--dry-run", "--pack", "--install-only"):
        assert needed in done.stdout, needed
    assert run_script("--bogus").returncode == 2


def test_only_versions_that_matter_must_match():
    pins = deploy_check.pins()
    have = {name: pins[name] for name in (*deploy_check.EXACT, *deploy_check.ANY_VERSION)}
    assert deploy_check.to_carry(have, pins) == []
    have |= {"numpy": "1.0", "transformers": "4.0"}
    assert deploy_check.to_carry(have, pins) == [("transformers", pins["transformers"])]
    del have["unsloth"]
    assert ("unsloth", pins["unsloth"]) in deploy_check.to_carry(have, pins)


def make_wheel(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name in members:
            z.writestr(name, b"x" * 1000)
        record = "\n".join(f"{m},sha256=x,1000" for m in members)
        z.writestr(f"{path.name.split('-')[0]}-1.0.dist-info/RECORD", record)


def test_slimming_keeps_what_the_check_loads(tmp_path):
    bnb = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    libs = [f"bitsandbytes/libbitsandbytes_{v}.so" for v in ("cuda128", "cuda130", "cpu", "rocm72")]
    make_wheel(bnb, ["bitsandbytes/__init__.py", *libs])
    assert deploy_check.slim_wheel(bnb) > 0
    with zipfile.ZipFile(bnb) as z:
        names = set(z.namelist())
        record = z.read("bitsandbytes-1.0.dist-info/RECORD").decode()
    kept = {"bitsandbytes/libbitsandbytes_cuda130.so", "bitsandbytes/libbitsandbytes_cpu.so"}
    assert {n for n in names if n.endswith(".so")} == kept
    assert "cuda128" not in record and "cuda130" in record

    unsloth = tmp_path / "unsloth-2026.10.7-py3-none-any.whl"
    make_wheel(unsloth, ["unsloth/__init__.py", "studio/frontend/app.js", "unsloth_cli/x.py"])
    deploy_check.slim_wheel(unsloth)
    with zipfile.ZipFile(unsloth) as z:
        assert not [n for n in z.namelist() if n.startswith("studio/")]
        assert "unsloth/__init__.py" in z.namelist()

    other = tmp_path / "peft-0.21.2-py3-none-any.whl"
    make_wheel(other, ["peft/__init__.py"])
    assert deploy_check.slim_wheel(other) == 0


def test_batches_fill_each_call_up_to_the_room():
    mib = 2**20
    sizes = [("pyarrow", 34 * mib), ("numpy", 16 * mib), ("pandas", 11 * mib),
             ("transformers", 12 * mib), ("tiny", mib)]  # fmt: skip
    groups = deploy_check.batches(sizes, 40 * mib)
    assert sorted(n for g in groups for n in g) == sorted(n for n, _ in sizes)
    size = dict(sizes)
    assert all(sum(size[n] for n in g) <= 40 * mib for g in groups) and len(groups) == 2


def test_the_run_refuses_a_machine_without_cuda(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine: the real run belongs to scripts/gpu_check.sh")
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_run", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and re.search(r"no CUDA device", done.stderr)
