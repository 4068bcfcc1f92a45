"""Where the gateway's CPU goes under the 16-stream streaming load: py-spy samples the gateway
process while the benchmark's client streams through it from the fake upstream.

    pip install py-spy   # not a dependency of the project
    python -m bench.gateway_profile [--seconds 20] [--py-spy PATH] [--raw FILE]

Prints the share of samples by the package of the innermost frame (the event loop's native code,
uvicorn, aiohttp, json, the project's server/ code), the top self-time functions and the top inclusive ones. The
figures behind docs/benchmarks.md's explanation of the added latency.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.gateway_bench import Cores, measure
from bench.gateway_peers import start_gateway
from bench.peers import KEY

PACKAGES = ("uvicorn", "httptools", "h11", "aiohttp", "starlette", "fastapi", "json", "asyncio",
            "logging", "prometheus", "(server/", "(tutor/")  # fmt: skip
LOOP = (
    "Runner.run (asyncio/runners.py)"  # a leaf here = the loop's native code (uvloop: epoll, I/O)
)


def summarise(raw: Path, top: int = 20) -> str:
    """A text summary of py-spy's raw (collapsed-stack) output."""
    by_package, self_time, inclusive = (collections.Counter() for _ in range(3))
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        n, frames = int(count), [re.sub(r":\d+\)", ")", f) for f in stack.split(";")]
        total += n
        self_time[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
        leaf = frames[-1]
        package = next((p.strip("(") for p in PACKAGES if p in leaf), leaf)
        kind = "event loop, native" if leaf == LOOP else package
        by_package[kind] += n
    out = [f"{total} samples"]
    for title, counter in (("by package of the innermost frame", by_package),
                           ("self time", self_time), ("inclusive", inclusive)):  # fmt: skip
        out.append(f"\n{title}:")
        out += [f"{v / total * 100:5.1f}%  {k}" for k, v in counter.most_common(top)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description="Profile the gateway under 16 streaming clients.")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds sampled (default: 20)")
    p.add_argument("--py-spy", default=shutil.which("py-spy"), help="py-spy binary (default: PATH)")
    p.add_argument(
        "--raw", default=None, help="keep py-spy's raw stacks here (default: a temp file)"
    )
    args = p.parse_args()
    if not args.py_spy:
        sys.exit("bench.gateway_profile: error: no py-spy (pip install py-spy, or --py-spy PATH)")
    raw = Path(args.raw or tempfile.mkstemp(suffix=".raw")[1])
    headers = {"Authorization": f"Bearer {KEY}"}
    with ExitStack() as stack:
        url, gw = start_gateway(stack, Cores())[1]["gateway"]
        measure(url, 16, 64, True, gw.pid, headers)  # warm-up
        spy = subprocess.Popen([args.py_spy, "record", "--pid", str(gw.pid), "--rate", "1000",
                                "--format", "raw", "-o", str(raw), "--nonblocking",
                                "--duration", str(int(args.seconds) + 3)])  # fmt: skip
        time.sleep(1.0)
        start, figures = time.monotonic(), {}
        while time.monotonic() - start < args.seconds:
            figures = measure(url, 16, 320, True, gw.pid, headers)
        spy.wait()
    print(
        f"last round: p50 {figures['p50_ms']:.1f} ms, {figures['rps']:.0f} req/s, "
        f"gateway CPU {figures['server_cpu_us']:.0f} µs per request"
    )
    print(summarise(raw))


if __name__ == "__main__":
    main()
