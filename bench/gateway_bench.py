"""Gateway overhead benchmark: the same load sent straight to a fast fake upstream and through the
gateway in front of it, streaming and not, at several concurrencies.

    socratic bench gateway [--quick]

Three processes: the fake upstream (fixed latency, N streamed chunks), the gateway
(`socratic serve --engine-url`, limits raised out of the way, logs at WARNING) and this one, the
load client (aiohttp, one connection per request in flight). Per cell: p50/p99 latency, time to
first chunk, requests/s; and the ratios gateway/direct. Goal: p50 added latency <= 1 ms and
throughput ratio >= 0.9 at 64 concurrent streams. On a machine with few cores the three processes
compete for them, so the CPU time the gateway process spends per request (read from /proc) is
reported too: it is what the gateway costs, whatever else runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from bench.common import cpu_seconds, percentile, print_table, spawn
from server.launch import free_port

LATENCY_MS = 50.0  # the fake upstream's total response time
CHUNKS = 16  # streamed chunks per response
BODY = {"messages": [{"role": "user", "content": "Why does ice float on water?"}], "max_tokens": 64}


async def _one(session: Any, url: str, stream: bool) -> tuple[float, float]:
    """(latency, time to first chunk) of one request, in seconds."""
    t0 = time.perf_counter()
    first = None
    async with session.post(url + "/v1/chat/completions", json={**BODY, "stream": stream}) as r:
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}: {(await r.text())[:200]}")
        async for _ in r.content.iter_any():
            if first is None:
                first = time.perf_counter() - t0
    return time.perf_counter() - t0, first or 0.0


async def _load(url: str, concurrency: int, n: int, stream: bool) -> dict[str, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(
            *(_one(session, url, stream) for _ in range(min(concurrency, 8)))
        )  # warm
        queue = iter(range(n))
        results: list[tuple[float, float]] = []

        async def worker() -> None:
            for _ in queue:
                results.append(await _one(session, url, stream))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    lat = [r[0] * 1000 for r in results]
    ttfc = [r[1] * 1000 for r in results]
    return {
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "ttfc_p50_ms": percentile(ttfc, 50),
        "rps": n / elapsed,
    }


def run(quick: bool) -> dict[str, Any]:
    levels = (1, 16, 64) if quick else (1, 16, 64, 256)
    per_level = 4 if quick else 10  # requests per concurrent client
    up_port, gw_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    gateway = f"http://127.0.0.1:{gw_port}"
    up_cmd = [sys.executable, "-m", "bench.fake_upstream", "--port", str(up_port),
              "--latency-ms", str(LATENCY_MS), "--chunks", str(CHUNKS)]  # fmt: skip
    gw_cmd = [sys.executable, "-m", "tutor.cli", "serve", "--engine-url", upstream,
              "--port", str(gw_port), "--log-level", "WARNING"]  # fmt: skip
    env = {**os.environ, "MAX_CONCURRENCY_PER_KEY": "100000", "MAX_TOKENS_CAP": "4096"}
    rows = []
    with (
        spawn(up_cmd, upstream + "/health") as up,
        spawn(gw_cmd, gateway + "/ready", env=env) as gw,
    ):
        for stream in (False, True):
            for c in levels:
                n = max(20, c * per_level)
                direct = _measured(upstream, c, n, stream, up.pid)
                through = _measured(gateway, c, n, stream, gw.pid)
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


def _measured(url: str, c: int, n: int, stream: bool, server_pid: int) -> dict[str, float]:
    """Load figures plus the CPU time the server process (`server_pid`) spent per request."""
    before = cpu_seconds(server_pid)
    figures = asyncio.run(_load(url, c, n, stream))
    figures["server_cpu_us"] = (cpu_seconds(server_pid) - before) / (n + c) * 1e6  # + warm-up
    return figures


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
