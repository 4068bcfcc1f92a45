"""llama.cpp's own GGUF tools, as the GGUF export uses them: the converter script, the quantiser
and the loader. Nothing here writes GGUF by hand.

    python -m trainer.gguf_tools install        # unpack the converter of the installed llama-cpp-python
    python -m trainer.gguf_tools install --sdist llama_cpp_python-0.3.36.tar.gz
    python -m trainer.gguf_tools where          # print the converter dir in use

The `gguf` extra (`pip install -e '.[gguf]'`) installs llama-cpp-python, which builds llama.cpp
from source once (the pip cache keeps the wheel) and exposes `llama_model_quantize` and the loader.
Its wheel does not carry llama.cpp's `convert_hf_to_gguf.py` (nor its `conversion/` and `gguf-py/`
siblings), so `install` unpacks them from the same version's sdist into
`$SOCRATIC_CACHE/llama.cpp/<version>/` (default ~/.cache/socratic-tutor/...), outside the checkout;
`LLAMA_CPP_CONVERTER_DIR` points at another llama.cpp tree instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainer.config import TrainError
from trainer.gguf_import import cache_dir

PACKAGE = "llama-cpp-python"
EXTRA_HINT = "pip install -e '.[gguf]' && python -m trainer.gguf_tools install (make gguf-tools)"
MISSING = f"GGUF export needs the gguf extra (llama-cpp-python): {EXTRA_HINT}"
CONVERTER = "convert_hf_to_gguf.py"
# What the converter needs from llama.cpp's tree: the script, its model classes, its gguf writer.
CONVERTER_PARTS = (CONVERTER, "conversion/", "gguf-py/", "LICENSE")
VENDOR = "vendor/llama.cpp/"
ENV_DIR = "LLAMA_CPP_CONVERTER_DIR"
# Written by llama.cpp's converter itself (--outtype); every other type goes through the quantiser.
CONVERTER_TYPES = ("f32", "f16", "bf16")


class GGUFError(TrainError):
    """A GGUF step failed or cannot run here; the message is one line and says what to do."""


def require_llama_cpp() -> Any:
    """The llama_cpp module, or a one-line error naming the extra."""
    try:
        import llama_cpp
    except ImportError:
        raise GGUFError(MISSING) from None
    return llama_cpp


def llama_cpp_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        raise GGUFError(MISSING) from None


def default_converter_dir(version: str) -> Path:
    return cache_dir().parent / "llama.cpp" / version


def converter_dir() -> Path:
    """The llama.cpp tree holding convert_hf_to_gguf.py; a one-line error when it is missing."""
    env = os.environ.get(ENV_DIR)
    root = Path(env).expanduser() if env else default_converter_dir(llama_cpp_version())
    if not (root / CONVERTER).is_file() or not (root / "conversion").is_dir():
        where = f"{ENV_DIR}={env}" if env else str(root)
        raise GGUFError(f"llama.cpp's converter is not installed ({where}): {EXTRA_HINT}")
    return root


def install(sdist: Path | None = None) -> Path:
    """Unpack the converter parts of the installed version's sdist (downloaded by pip when None)."""
    version = llama_cpp_version()
    out = default_converter_dir(version)
    if (out / CONVERTER).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".llama.cpp-", dir=out.parent) as tmp:
        if sdist is None:
            sdist = _download_sdist(version, Path(tmp))
        elif f"-{version}." not in Path(sdist).name:
            raise GGUFError(f"{sdist}: not the sdist of the installed {PACKAGE} {version}")
        staged = Path(tmp) / "tree"
        _extract_converter(sdist, staged)
        staged.rename(out)
    return out


def _download_sdist(version: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q"]
    cmd += [f"{PACKAGE}=={version}", "-d", str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob("*.tar.gz"))
    if done.returncode != 0 or not found:
        tail = (done.stderr.strip().splitlines() or ["no sdist downloaded"])[-1]
        raise GGUFError(f"pip download {PACKAGE}=={version} failed: {tail}")
    return found[0]


def _extract_converter(sdist: Path, out: Path) -> None:
    try:
        with tarfile.open(sdist) as tar:
            members = []
            for m in tar.getmembers():
                rel = m.name.split("/", 1)[1] if "/" in m.name else ""
                if rel.startswith(VENDOR) and rel[len(VENDOR) :].startswith(CONVERTER_PARTS):
                    m.name = rel[len(VENDOR) :]
                    members.append(m)
            tar.extractall(out, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise GGUFError(f"{sdist}: not a readable llama-cpp-python sdist ({e})") from None
    if not (out / CONVERTER).is_file():
        raise GGUFError(f"{sdist}: no {VENDOR}{CONVERTER} inside (not a llama-cpp-python sdist)")


def convert(model_dir: Path, outfile: Path, outtype: str, log: Path, name: str) -> None:
    """Run llama.cpp's converter on a Hugging Face model dir; its output goes to `log`."""
    script = converter_dir() / CONVERTER
    cmd = [sys.executable, str(script), str(model_dir), "--outfile", str(outfile)]
    cmd += ["--outtype", outtype, "--model-name", name]
    with log.open("a", encoding="utf-8") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0 or not outfile.is_file():
        raise GGUFError(
            f"{model_dir}: llama.cpp's converter failed ({last_line(log)}); full log: {log}"
        )


def quantize(src: Path, dst: Path, qtype: str, log: Path) -> None:
    """`llama_model_quantize` from a 16/32-bit GGUF to `qtype` (e.g. q4_k_m); C logs go to `log`."""
    llama_cpp = require_llama_cpp()
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype.upper()}", None)
    if ftype is None:
        raise GGUFError(f"{qtype}: not a quantisation type of llama.cpp {llama_cpp_version()}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype  # nthread stays 0: llama.cpp uses every CPU for this batch job
    with redirect_fds(log):
        code = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if code != 0 or not dst.is_file():
        raise GGUFError(f"{src}: llama.cpp could not quantise it to {qtype} ({last_line(log)})")


def load(path: Path, n_ctx: int = 2048) -> Any:
    """A llama.cpp model on CPU; a one-line error when the file is truncated or foreign."""
    llama_cpp = require_llama_cpp()
    try:
        # threads: llama-cpp-python's default, half the logical CPUs (one per physical core);
        # decoding on every logical CPU of a busy 2-core machine measured 4x slower
        return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, verbose=False)
    except (ValueError, RuntimeError, OSError) as e:
        raise GGUFError(
            f"{path}: llama.cpp cannot load it (truncated or not a GGUF model): {e}"
        ) from None


@contextlib.contextmanager
def redirect_fds(log: Path) -> Iterator[None]:
    """Send C-level stdout/stderr (llama.cpp's logs) to `log` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with log.open("ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def last_line(log: Path) -> str:
    """The last non-empty line of a log: a traceback's error, or llama.cpp's last message."""
    lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1][:300] if lines else "no output"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m trainer.gguf_tools", description=__doc__.split("\n\n")[0]
    )
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("install", help="unpack llama.cpp's converter from the sdist (once)")
    i.add_argument(
        "--sdist",
        type=Path,
        default=None,
        help="a llama-cpp-python sdist (.tar.gz) of the installed version (default: `pip "
        "download` it, 77 MB); a no-op when that version's converter is already unpacked "
        "in $SOCRATIC_CACHE/llama.cpp/<version> (default ~/.cache/socratic-tutor/...)",
    )
    sub.add_parser("where", help="print the converter dir in use")
    args = p.parse_args(argv)
    try:
        path = install(args.sdist) if args.command == "install" else converter_dir()
    except GGUFError as e:
        print(f"gguf_tools: error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
