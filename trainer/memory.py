"""Host memory of a training process: a memory allocator that gives freed activations back.

    from trainer.memory import use_better_allocator
    use_better_allocator()   # first thing in `socratic train`: re-executes under tcmalloc if found

PyTorch's CPU tensors come from the C allocator. glibc's malloc keeps the activations of one
training step on its heap (it raises its mmap threshold to the size of any large block freed),
where freed blocks stay resident and fragment; tcmalloc reuses them. Measured on SmolLM2-135M with
gradient checkpointing (`socratic bench train --vs-trl`, docs/benchmarks.md): peak 3.1-3.4 GiB
under glibc, 1.45 GiB under tcmalloc, at the same speed. Fixing glibc's threshold instead
(`MALLOC_MMAP_THRESHOLD_`) gets the same peak at half the speed (every large block is a fresh
mapping, page-faulted in again).

A process cannot swap its allocator once running, so `use_better_allocator` re-executes the
command (`sys.orig_argv`) with the library in `LD_PRELOAD`, once, before torch is imported.
Nothing happens when: SOCRATIC_ALLOCATOR=system, an allocator of ALLOCATORS is already loaded
(LD_PRELOAD set by the user), none is installed (Debian/Ubuntu: `apt-get install
libtcmalloc-minimal4`; a one-line notice says so), or the platform is not Linux.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

ALLOCATORS = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4", "libjemalloc.so.2")
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
            "/usr/local/lib")  # fmt: skip
CHOICE = "SOCRATIC_ALLOCATOR"  # "system" keeps the C library's malloc
INSTALL_HINT = "apt-get install libtcmalloc-minimal4"


def find_allocator(lib_dirs: tuple[str, ...] = LIB_DIRS) -> Path | None:
    """The first of ALLOCATORS installed in `lib_dirs`, or None."""
    for name in ALLOCATORS:
        for d in lib_dirs:
            if (path := Path(d) / name).is_file():
                return path
    return None


def loaded_allocator(maps: str = "/proc/self/maps") -> str | None:
    """The name of the allocator of ALLOCATORS mapped into this process, or None."""
    try:
        text = Path(maps).read_text()
    except OSError:
        return None
    return next((name for name in ALLOCATORS if name in text), None)


def allocator_env(env: Mapping[str, str], lib: Path | None) -> dict[str, str] | None:
    """`env` with `lib` first in LD_PRELOAD, or None when nothing is to change."""
    if lib is None or env.get(CHOICE) == "system" or not sys.platform.startswith("linux"):
        return None
    preload = env.get("LD_PRELOAD", "")
    if any(name in preload for name in ALLOCATORS):
        return None
    return {**env, "LD_PRELOAD": f"{lib} {preload}".strip()}


def started_as_socratic(argv: list[str] | None = None) -> bool:
    """Whether this process is the `socratic` command itself (not a test runner or another program
    that calls its functions): only then may it be re-executed."""
    first = Path((argv or sys.argv)[0])
    return first.name == "socratic" or first.parts[-2:] == ("tutor", "cli.py")


def use_better_allocator() -> None:
    """For the `socratic` command only: `reexec_with_allocator` unless SOCRATIC_ALLOCATOR=system."""
    if started_as_socratic() and os.environ.get(CHOICE) != "system":
        reexec_with_allocator()


def reexec_with_allocator() -> None:
    """Re-execute this command under tcmalloc (or jemalloc) when one is installed and not loaded;
    returns only when no re-execution happens."""
    if loaded_allocator():
        return
    lib = find_allocator()
    env = allocator_env(os.environ, lib)
    if env is None:
        if lib is None and sys.platform.startswith("linux"):
            print(f"memory: the C library's malloc (CPU training peaks about twice as high as "
                  f"under tcmalloc: `{INSTALL_HINT}`)")  # fmt: skip
        return
    print(f"memory: re-running under {lib.name} (freed activations reused; {CHOICE}=system not to)")
    sys.stdout.flush()
    os.execve(sys.executable, list(sys.orig_argv), env)
