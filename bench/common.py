"""What every benchmark shares: machine facts, versions, percentiles, the table and the JSON file."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tutor.io import atomic_open

VERSION_PACKAGES = (
    "socratic-tutor",
    "torch",
    "transformers",
    "trl",
    "peft",
    "fastapi",
    "uvicorn",
    "httpx",
    "openai",
)


def machine() -> dict[str, Any]:
    """CPU count, platform and the GPU's name when torch sees one (torch is not required)."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpu": None,
    }
    if "torch" in sys.modules or _installed("torch"):
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def versions(packages: Sequence[str] = VERSION_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]; NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_fmt(c) for c in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def write_result(name: str, figures: dict[str, Any], out: str | Path | None, quick: bool) -> Path:
    """Write the benchmark's JSON (figures + machine + versions + command line); return its path."""
    path = Path(out) if out else Path("reports") / "bench" / f"{name}.json"
    result = {
        "benchmark": name,
        "quick": quick,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["socratic", *sys.argv[1:]])
        if sys.argv[0].endswith("socratic")
        else " ".join(sys.argv),
        "machine": machine(),
        "versions": versions(),
        **figures,
    }
    with atomic_open(path) as f:
        json.dump(result, f, indent=2)
    print(f"\nwrote {path}")
    return path


def pinned(cmd: Sequence[str], cpu: int | None) -> list[str]:
    """`cmd` run on one CPU (`taskset`; its children stay there too) when `cpu` is set."""
    if cpu is None or not shutil.which("taskset"):
        return list(cmd)
    return ["taskset", "-c", str(cpu), *cmd]


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process, its threads and its live child processes (nginx's
    workers, a proxy's worker), in seconds: the sum of each live thread's nanosecond run time
    (Linux /proc schedstat), or the process's clock ticks where schedstat is missing."""
    return sum(_process_cpu(p) for p in [pid, *descendants(pid)])


def descendants(pid: int) -> list[int]:
    """The live processes below `pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _process_cpu(pid: int) -> float:
    total, tasks = 0, Path(f"/proc/{pid}/task")
    try:
        for task in tasks.iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):  # a thread that just ended
                continue
        return total / 1e9
    except OSError:
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # the process ended
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
