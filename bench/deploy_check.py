"""The prepared deployment check (the GPU check): the GPU job's first real run in under 10
minutes on one CUDA machine with no network, and what to carry there. Run it through
scripts/gpu_check.sh:

    scripts/gpu_check.sh --dry-run       # any machine: the plan, the wheels it lacks, the size
    scripts/gpu_check.sh --pack          # a networked machine: download + slim them into .whl/
    scripts/gpu_check.sh OUT_DIR         # the CUDA machine (bench.gpu_run): gpu_check.json + .log

The check builds a random-weight Qwen2.5-7B-architecture model (bench.train_bench; nothing is
downloaded), runs a few QLoRA steps of the GPU preset with packing on the `hf` and the `unsloth`
backend (each the real `socratic train` in its own process), the unsloth run with its export
(merged in a child process, then the verify generation), the DPO stage on the unsloth backend
(TRL's DPOTrainer patched by Unsloth) from that run on the bundled pairs, and records the `socratic bench train`
figures: tokens/s, step time, peak memory, MFU and the unsloth/hf ratio.

Only `torch` is expected on the machine. Every other distribution the check imports is pinned in
constraints.txt; `--dry-run` lists the ones the machine lacks (or, for the libraries whose
version matters, has at another version), the `pip download` line for them, and whether they fit
the carry limit with the working tree. Slimmed on packing: unsloth without its `studio/` app,
bitsandbytes with its CUDA 13.0 library only, pyarrow without Flight, S3 and Substrait.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WHEEL_DIR = REPO / ".whl"
CARRY_LIMIT = 64 * 2**20  # bytes the device takes per call: working tree + wheels
BUDGET_S = 570.0  # the whole check, seconds (one device call is at most 600)
PRESET = "configs/qwen2.5-7b-qlora.yaml"
DPO_PRESET = "configs/qwen2.5-7b-dpo-qlora.yaml"
STEPS, GRAD_ACCUM, CORPUS = 4, 2, 600  # optimizer steps, accumulation, conversations
PYTHON_VERSION = os.environ.get("GPU_PYTHON_VERSION", "3.12")  # the device's, for downloads
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64")  # fmt: skip
# The versions that decide behaviour (unsloth's caps, the trainer's API): these must match.
EXACT = ("unsloth", "unsloth-zoo", "bitsandbytes", "transformers", "peft", "trl", "accelerate",
         "datasets", "huggingface-hub", "tokenizers", "safetensors")  # fmt: skip
# Everything else `socratic train` with unsloth imports beside torch's own dependencies; any
# installed version will do. xformers, torchvision, torchao, diffusers and hf_transfer are
# optional for this run and left out.
ANY_VERSION = (
    "aiohappyeyeballs", "aiohttp", "aiosignal", "annotated-doc", "annotated-types", "anyio",
    "attrs", "certifi", "charset-normalizer", "click", "contourpy", "cut-cross-entropy", "cycler",
    "dill", "docstring-parser", "einops", "fonttools", "frozenlist", "h11", "hf-xet", "httpcore",
    "httpx", "idna", "importlib-metadata", "kiwisolver", "lazy-importer", "markdown-it-py",
    "matplotlib", "mdurl", "msgspec", "multidict", "multiprocess", "nest-asyncio", "numpy",
    "packaging", "pandas", "pillow", "propcache", "protobuf", "psutil", "pyarrow", "pydantic",
    "pydantic-core", "pygments", "pyparsing", "python-dateutil", "pyyaml", "regex", "requests",
    "rich", "sentencepiece", "shellingham", "six", "structlog", "tqdm", "typeguard", "typer",
    "typing-inspection", "tyro", "urllib3", "wheel", "xxhash", "yarl", "zipp",
)  # fmt: skip
# Archive members dropped when packing (regex on the path inside the wheel).
SLIM = {
    "unsloth": r"^studio/",
    "bitsandbytes": r"^bitsandbytes/libbitsandbytes_(?!cuda130\.so$|cpu\.so$)[^/]+\.so$",
    "pyarrow": r"^pyarrow/(libarrow_(flight|s3)[^/]*|_(flight|s3fs)[^/]*)$",
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """Exact versions from constraints.txt, by normalised name."""
    text = (REPO / "constraints.txt").read_text(encoding="utf-8")
    return {norm(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, re.M)}


def installed(bare: bool = False) -> dict[str, str]:
    """What this interpreter can import (its sys.path, the .gpu-site install included); with
    `bare`, only torch and what it brings (a machine with nothing but torch)."""
    have = {norm(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    if bare:
        torch_deps = (importlib.metadata.requires("torch") or []) if "torch" in have else []
        keep = {"torch", *(norm(re.match(r"[A-Za-z0-9_.-]+", r)[0]) for r in torch_deps)}
        have = {k: v for k, v in have.items() if k in keep}
    return have


def to_carry(have: dict[str, str], pinned: dict[str, str]) -> list[tuple[str, str]]:
    """(name, version) of each wheel this machine lacks, in a stable order."""
    need = []
    for name in (*EXACT, *ANY_VERSION):
        version = pinned[name]  # KeyError: constraints.txt lost a pin the check relies on
        if name not in have or (name in EXACT and have[name] != version):
            need.append((name, version))
    return need


def download_command(wanted: list[tuple[str, str]], dest: Path = WHEEL_DIR) -> list[str]:
    plats = [a for p in PLATFORMS for a in ("--platform", p)]
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--python-version", PYTHON_VERSION, "--implementation", "cp", *plats,
            "-d", str(dest), *(f"{n}=={v}" for n, v in wanted)]  # fmt: skip


def slim_wheel(path: Path) -> int:
    """Rewrite a wheel without the members SLIM drops for its project; returns bytes saved."""
    project = norm(path.name.split("-")[0])
    if project not in SLIM:
        return 0
    drop = re.compile(SLIM[project])
    before = path.stat().st_size
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if drop.search(item.filename):
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):  # list only what is still there
                lines = data.decode().splitlines()
                data = "\n".join(x for x in lines if not drop.search(x.split(",")[0])).encode()
            dst.writestr(item, data)
    tmp.replace(path)
    return before - path.stat().st_size


def tree_bytes() -> int | None:
    """Size of what a device call carries from the checkout: tracked and unignored files."""
    try:
        names = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
            capture_output=True, check=True,
        ).stdout.decode().split("\0")  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return sum((REPO / n).stat().st_size for n in names if n and (REPO / n).is_file())


def batches(sizes: list[tuple[str, int]], room: int) -> list[list[str]]:
    """Group wheels (largest first) into carries of at most `room` bytes each."""
    groups: list[tuple[int, list[str]]] = []
    for name, size in sorted(sizes, key=lambda x: -x[1]):
        fit = next((g for g in groups if g[0] + size <= room), None)
        if fit is None:
            groups.append((size, [name]))
        else:
            groups[groups.index(fit)] = (fit[0] + size, [*fit[1], name])
    return [names for _, names in groups]


def variants(work: Path, model_dir: Path, corpus: Path) -> list[dict[str, Any]]:
    """The training runs the check makes: `socratic train` per backend (unsloth also exports),
    then the DPO stage on the unsloth backend from the unsloth SFT run (bundled pairs)."""
    runs = []
    for backend in ("hf", "unsloth"):
        overrides = [f"model.name={model_dir}", f"train.backend={backend}", "data.packing=true",
                     f"data.train_files=[{corpus}]", f"train.max_steps={STEPS}",
                     f"train.grad_accum={GRAD_ACCUM}", "export.allow_unverified=true",
                     "export.verify_max_new_tokens=16"]  # fmt: skip
        runs.append({"backend": backend, "overrides": overrides, "out": work / backend,
                     "export": backend == "unsloth", "config": PRESET, "stage": "sft"})  # fmt: skip
    dpo = [f"dpo.sft_run={work / 'unsloth'}", "train.backend=unsloth", f"train.max_steps={STEPS}",
           f"train.grad_accum={GRAD_ACCUM}", "data.max_seq_len=1024"]  # fmt: skip
    runs.append({"backend": "unsloth", "overrides": dpo, "out": work / "unsloth-dpo",
                 "export": False, "config": DPO_PRESET, "stage": "dpo"})  # fmt: skip
    return runs


def dry_run(out: Path, bare: bool = False) -> int:
    """Print the plan and what to carry; change nothing."""
    work = Path(tempfile.gettempdir()) / "gpu-check"
    print(f"# GPU check plan (results in {out}/gpu_check.json and gpu_check.log, < {BUDGET_S:g} s)")
    print("1. install carried wheels: python3 -m pip install --no-index --no-deps --target "
          ".gpu-site .whl/*.whl   (PYTHONPATH=.gpu-site:.)")  # fmt: skip
    print('2. check imports: python3 -c "import unsloth, bitsandbytes, transformers, peft, trl"')
    print(f"3. build {work}/qwen2.5-7b-random: Qwen2.5-7B-Instruct's config, random bf16 weights")
    print(f"4. write {work}/corpus.jsonl: {CORPUS} conversations from data/sample")
    from bench.train_bench import variant_command

    runs = variants(work, work / "qwen2.5-7b-random", work / "corpus.jsonl")
    for i, run in enumerate(runs, 5):
        then = ", then export (child process) + verify" if run["export"] else ""
        what = "QLoRA steps, packing" if run["stage"] == "sft" else "DPO steps (TRL + Unsloth)"
        argv = variant_command(run["config"], run["overrides"], run["out"], run["export"])
        print(f"{i}. {run['backend']}: {STEPS} {what}{then}:\n   python3 " + " ".join(argv[1:]))
    print(f"{i + 1}. figures: tokens/s, step s, peak GiB, MFU per run; unsloth/hf tokens/s")

    have, pinned = installed(bare), pins()
    who = "torch alone (--bare)" if bare else f"this interpreter, Python {sys.version.split()[0]}"
    print(f"\n# {who}: torch {have.get('torch', 'MISSING')}")
    need = to_carry(have, pinned)
    if not need:
        print("nothing to carry: every distribution the check imports is here")
        return 0
    print(
        f"# wheels to carry ({len(need)}; {len(EXACT)} must match exactly, the rest any version):"
    )
    for name, version in need:
        now = have.get(name)
        print(f"  {name}=={version}" + (f"   (here: {now})" if now else "   (missing)"))
    pack_cmd = "scripts/gpu_check.sh --pack" + (" --bare" if bare else "")
    print(f"\n# on a networked machine: {pack_cmd}, which runs this download")
    print("# and then slims unsloth, bitsandbytes and pyarrow:")
    print("  " + shlex.join(["python3", *download_command(need)[1:]]))
    report_sizes(need)
    return 0


def report_sizes(need: list[tuple[str, str]]) -> None:
    tree = tree_bytes()
    room = CARRY_LIMIT - (tree or 0)
    print(f"\n# carry limit {CARRY_LIMIT / 2**20:.0f} MiB per call; working tree "
          + (f"{tree / 2**20:.1f} MiB" if tree is not None else "unknown (no git)"))  # fmt: skip
    wheels = {norm(p.name.split("-")[0]): p for p in WHEEL_DIR.glob("*.whl")}
    missing = [n for n, _ in need if n not in wheels]
    if missing:
        print(f"  not in .whl/ yet: {', '.join(missing)} (run --pack to measure)")
        return
    sizes = [(n, p.stat().st_size) for n, p in wheels.items() if n in dict(need)]
    total = sum(s for _, s in sizes)
    verdict = "fits" if total <= room else "does NOT fit in one call"
    print(f"  .whl/: {total / 2**20:.1f} MiB for {len(sizes)} wheels: {verdict}")
    if total > room:
        groups = batches(sizes, room)
        for i, group in enumerate(groups, 1):
            size = sum(s for n, s in sizes if n in group) / 2**20
            then = (
                "scripts/gpu_check.sh OUT"
                if i == len(groups)
                else "scripts/gpu_check.sh --install-only"
            )
            print(f"  call {i}: put these {len(group)} in .whl/ ({size:.1f} MiB), carry it, run {then}:"
                  f"\n    {' '.join(group)}")  # fmt: skip


def pack(bare: bool = False) -> int:
    """Download the wheels this interpreter (or, `bare`, torch alone) lacks into .whl/, slimmed."""
    need = to_carry(installed(bare), pins())
    WHEEL_DIR.mkdir(exist_ok=True)
    subprocess.run(download_command(need), check=True)
    for path in sorted(WHEEL_DIR.glob("*.whl")):
        if saved := slim_wheel(path):
            print(f"slimmed {path.name}: -{saved / 2**20:.1f} MiB")
    report_sizes(need)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`--dry-run [OUT]` or `--pack`; scripts/gpu_check.sh OUT runs bench.gpu_run instead."""
    p = argparse.ArgumentParser(prog="python -m bench.deploy_check")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="print the plan and what to carry")
    mode.add_argument("--pack", action="store_true", help="download + slim the wheels into .whl/")
    p.add_argument("--bare", action="store_true", help="for a machine with only torch installed")
    p.add_argument("out", nargs="?", default=os.environ.get("OUT") or "reports/gpu-check",
                   help="the check's result folder (default: $OUT, else reports/gpu-check)")  # fmt: skip
    args = p.parse_args(argv)
    return dry_run(Path(args.out), args.bare) if args.dry_run else pack(args.bare)


if __name__ == "__main__":
    sys.exit(main())
