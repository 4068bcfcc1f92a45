"""Gateway overhead benchmark: the same load sent straight to a fast fake upstream and through the
gateway in front of it, streaming and not, at several concurrencies.

    socratic bench gateway [--quick]

Three processes: the fake upstream (fixed latency, N streamed chunks), the gateway
(`socratic serve --engine-url`, limits raised out of the way, logs at WARNING) and this one, the
load client (aiohttp, one connection per request in flight). Per cell: p50/p99 latency, time to
first chunk, requests/s; and the ratios gateway/direct. Goal: p50 added latency <= 1 ms and
throughput ratio >= 0.9 at 64 concurrent streams. On a machine with few cores the three processes
compete for them (SOCRATIC_BENCH_PIN=1 pins them apart, see `Cores`), so the CPU time the gateway
process spends per timed request (read from /proc, warm-up excluded) is reported too: it is what
the gateway costs, whatever else runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.common import cpu_seconds, percentile, pinned, print_table
from tutor.proc import free_port, spawned

LATENCY_MS = 50.0  # the fake upstream's total response time
CHUNKS = 16  # streamed chunks per response
# limits out of the way, as a deployment sized for the load would set them
GATEWAY_ENV = {**os.environ, "MAX_CONCURRENCY_PER_KEY": "100000", "MAX_TOKENS_CAP": "4096"}
MODEL = "socratic-tutor"  # the gateway's served name; the fake upstream accepts any
BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Why does ice float on water?"}],
    "max_tokens": 64,
}


async def _one(session: Any, url: str, body: dict) -> tuple[float, float]:
    """(latency, time to first chunk) of one request, in seconds."""
    t0 = time.perf_counter()
    first = None
    async with session.post(url + "/v1/chat/completions", json=body) as r:
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}: {(await r.text())[:200]}")
        async for _ in r.content.iter_any():
            if first is None:
                first = time.perf_counter() - t0
    return time.perf_counter() - t0, first or 0.0


async def _load(
    url: str, c: int, n: int, body: dict, pid: int, headers: dict | None = None
) -> dict[str, float]:
    """`n` requests, `c` at a time, after a warm-up of min(c, 8); latency percentiles, req/s and
    the CPU time process `pid` (with its threads and children) spent per timed request."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        await asyncio.gather(*(_one(session, url, body) for _ in range(min(c, 8))))
        queue = iter(range(n))
        results: list[tuple[float, float]] = []

        async def worker() -> None:
            for _ in queue:
                results.append(await _one(session, url, body))

        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    lat = [r[0] * 1000 for r in results]
    ttfc = [r[1] * 1000 for r in results]
    return {
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "ttfc_p50_ms": percentile(ttfc, 50),
        "rps": n / elapsed,
        "server_cpu_us": cpu / n * 1e6,
    }


def measure(
    url: str, c: int, n: int, stream: bool, pid: int, headers: dict | None = None
) -> dict[str, float]:
    """Load figures plus the CPU time the server process `pid` spent per request."""
    return asyncio.run(_load(url, c, n, {**BODY, "stream": stream}, pid, headers))


# SOCRATIC_BENCH_PIN=1: pin the server under test to one core, the upstream and the load client
# to another. For a dedicated machine, where the client could starve the servers; on a shared
# one it only adds run-queue waits (measured: +30-60 ms per 16-chunk stream on a busy core).
PIN = os.environ.get("SOCRATIC_BENCH_PIN") == "1"


@dataclass(frozen=True)
class Cores:
    """Where each process runs (None = wherever the scheduler puts it): with SOCRATIC_BENCH_PIN=1
    and two or more cores, the server under test alone on one, the upstream and the client on
    another."""

    proxy: int | None = None
    upstream: int | None = None
    client: int | None = None

    @classmethod
    def layout(cls) -> Cores:
        cpus = sorted(os.sched_getaffinity(0))
        if not PIN or len(cpus) < 2:
            return cls()
        return cls(cpus[0], cpus[1], cpus[2] if len(cpus) > 2 else cpus[1])


@contextmanager
def client_on(cpu: int | None) -> Iterator[None]:
    """Run this process (the load client) on `cpu` for the block."""
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run(quick: bool) -> dict[str, Any]:
    levels = (1, 16, 64) if quick else (1, 16, 64, 256)
    per_level = 4 if quick else 10  # requests per concurrent client
    up_port, gw_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    gateway = f"http://127.0.0.1:{gw_port}"
    up_cmd = [sys.executable, "-m", "testkit.fast_upstream", "--port", str(up_port),
              "--latency-ms", str(LATENCY_MS), "--chunks", str(CHUNKS)]  # fmt: skip
    gw_cmd = [sys.executable, "-m", "tutor.cli", "serve", "--engine-url", upstream,
              "--port", str(gw_port), "--log-level", "WARNING"]  # fmt: skip
    cores = Cores.layout()
    rows = []
    with (
        spawned(pinned(up_cmd, cores.upstream), upstream + "/health") as up,
        spawned(pinned(gw_cmd, cores.proxy), gateway + "/ready", env=GATEWAY_ENV) as gw,
        client_on(cores.client),
    ):
        for stream in (False, True):
            for c in levels:
                n = max(20, c * per_level)
                direct = measure(upstream, c, n, stream, up.pid)
                through = measure(gateway, c, n, stream, gw.pid)
                rows.append(_row(stream, c, n, direct, through))
    _print(rows)
    at64 = next(r for r in rows if r["stream"] and r["concurrency"] == 64)
    met = at64["added_p50_ms"] <= 1.0 and at64["throughput_ratio"] >= 0.9
    print(
        f"goal at 64 streams: added p50 <= 1 ms and throughput ratio >= 0.9: "
        f"{'met' if met else 'MISSED'} ({at64['added_p50_ms']:.2f} ms, {at64['throughput_ratio']:.3f})"
    )
    return {"latency_ms": LATENCY_MS, "chunks": CHUNKS, "results": rows,
            "added_p50_ms": {f"{'stream' if r['stream'] else 'json'}@{r['concurrency']}": r["added_p50_ms"] for r in rows},
            "throughput_ratio": {f"{'stream' if r['stream'] else 'json'}@{r['concurrency']}": r["throughput_ratio"] for r in rows}}  # fmt: skip


def _row(stream: bool, c: int, n: int, direct: dict, through: dict) -> dict[str, Any]:
    return {
        "stream": stream,
        "concurrency": c,
        "requests": n,
        "direct": direct,
        "gateway": through,
        "added_p50_ms": through["p50_ms"] - direct["p50_ms"],
        "added_ttfc_p50_ms": through["ttfc_p50_ms"] - direct["ttfc_p50_ms"],
        "throughput_ratio": through["rps"] / direct["rps"],
        "gateway_cpu_us": through["server_cpu_us"],
        "upstream_cpu_us": direct["server_cpu_us"],
    }


def _print(rows: list[dict]) -> None:
    print_table(
        f"gateway vs direct: fake upstream {LATENCY_MS:.0f} ms, {CHUNKS} chunks when streaming",
        ["mode", "conc", "direct p50", "gw p50", "added p50", "gw p99", "added ttfc", "direct rps",
         "gw rps", "ratio", "gw cpu/req", "fake cpu/req"],
        [["stream" if r["stream"] else "json", r["concurrency"], r["direct"]["p50_ms"],
          r["gateway"]["p50_ms"], r["added_p50_ms"], r["gateway"]["p99_ms"], r["added_ttfc_p50_ms"],
          r["direct"]["rps"], r["gateway"]["rps"], r["throughput_ratio"], r["gateway_cpu_us"],
          r["upstream_cpu_us"]] for r in rows],
    )  # fmt: skip
    print("(latencies in ms; cpu/req: CPU time of that server process per request, in µs)")
