"""The gateway next to what a user would otherwise put in front of vLLM: the same load sent to
the fake upstream directly, through the project's gateway, through LiteLLM's proxy and through
nginx (a plain reverse proxy), streaming and not, at 1, 16 and 64 concurrent requests.

    socratic bench gateway --peers [--quick]

The proxies each get the same upstream (testkit/fast_upstream.py: 50 ms per response, 16 chunks)
and a client key where they check one (the gateway and LiteLLM). The figure that holds on a
small shared machine is the CPU time the proxy's processes (with their threads and workers)
spend per request; latencies and throughput are reported too. Each proxy is measured alone;
SOCRATIC_BENCH_PIN=1 pins every proxy to one core and the upstream and the client to another
(bench.gateway_bench.Cores: for a dedicated machine; on a shared one pinning adds waits). LiteLLM and nginx are
installed by bench.peers on first use; a peer that cannot be installed is reported as skipped.
Goals, streaming at 16: gateway CPU per request <= 0.5 x LiteLLM's and <= 5 x nginx's; added
p50 <= 1 ms.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import ExitStack
from typing import Any

from bench.common import pinned, print_table
from bench.gateway_bench import CHUNKS, GATEWAY_ENV, LATENCY_MS, Cores, client_on, measure
from bench.peers import KEY, litellm_proxy, nginx_proxy
from tutor.proc import free_port, spawned

GOAL_LEVEL = 16


def start_gateway(stack: ExitStack, cores: Cores) -> tuple[int, dict[str, tuple[str, Any]]]:
    """The fake upstream and the project's gateway in front of it (with the client key KEY):
    (the upstream's port, {"direct": (url, process), "gateway": (url, process)})."""
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    up_cmd = [sys.executable, "-m", "testkit.fast_upstream", "--port", str(up_port),
              "--latency-ms", str(LATENCY_MS), "--chunks", str(CHUNKS)]  # fmt: skip
    targets = {"direct": (upstream, stack.enter_context(spawned(pinned(up_cmd, cores.upstream),
                                                              upstream + "/health")))}  # fmt: skip
    port = free_port()
    gw_cmd = [sys.executable, "-m", "tutor.cli", "serve", "--engine-url", upstream,
              "--port", str(port), "--log-level", "WARNING"]  # fmt: skip
    env = {**GATEWAY_ENV, "API_KEYS": KEY}
    url = f"http://127.0.0.1:{port}"
    targets["gateway"] = (url, stack.enter_context(spawned(pinned(gw_cmd, cores.proxy),
                                                         url + "/ready", env=env)))  # fmt: skip
    return up_port, targets


def start_targets(stack: ExitStack, cores: Cores) -> tuple[dict[str, tuple[str, Any]], dict]:
    """Start the upstream and every proxy in front of it: ({name: (url, process)}, {skipped})."""
    up_port, targets = start_gateway(stack, cores)
    upstream = f"http://127.0.0.1:{up_port}"
    skipped = {}
    peers = {"litellm": lambda p: litellm_proxy(upstream, p, cores.proxy),
             "nginx": lambda p: nginx_proxy(up_port, p, cores.proxy)}  # fmt: skip
    for name, start in peers.items():
        port = free_port()
        try:
            targets[name] = (f"http://127.0.0.1:{port}", stack.enter_context(start(port)))
        except (RuntimeError, OSError, ValueError, subprocess.CalledProcessError) as e:
            skipped[name] = str(e).splitlines()[0]
            print(f"{name}: skipped ({skipped[name]})")
    return targets, skipped


def requests_at(c: int, quick: bool) -> int:
    """Enough requests per cell for a CPU figure that is not noise (at least 60)."""
    return max(60 if quick else 200, c * (8 if quick else 20))


def run(quick: bool) -> dict[str, Any]:
    cores = Cores.layout()
    headers = {"Authorization": f"Bearer {KEY}"}
    rows = []
    with ExitStack() as stack:
        targets, skipped = start_targets(stack, cores)
        stack.enter_context(client_on(cores.client))
        for stream in (False, True):
            for c in (1, 16, 64):
                n = requests_at(c, quick)
                cell = {name: measure(url, c, n, stream, proc.pid, headers)
                        for name, (url, proc) in targets.items()}  # fmt: skip
                rows += [_row(name, stream, c, n, cell) for name in cell]
    _print(rows, cores)
    return figures(rows, skipped, cores)


def _row(name: str, stream: bool, c: int, n: int, cell: dict) -> dict[str, Any]:
    r, direct = cell[name], cell["direct"]
    return {
        "target": name, "mode": "stream" if stream else "json", "concurrency": c, "requests": n,
        **r, "added_p50_ms": r["p50_ms"] - direct["p50_ms"],
        "added_p99_ms": r["p99_ms"] - direct["p99_ms"],
        "throughput_ratio": r["rps"] / direct["rps"],
    }  # fmt: skip


def figures(rows: list[dict], skipped: dict, cores: Cores) -> dict[str, Any]:
    by = {(r["target"], r["mode"], r["concurrency"]): r for r in rows}
    cpu = {k: r["server_cpu_us"] for k, r in by.items()}
    out: dict[str, Any] = {
        "latency_ms": LATENCY_MS, "chunks": CHUNKS, "cores": vars(cores), "skipped": skipped,
        "results": rows,
        "added_p50_ms": {f"{m}@{c}": by[("gateway", m, c)]["added_p50_ms"]
                         for (t, m, c) in by if t == "gateway"},
        "cpu_us_per_request": {t: {f"{m}@{c}": v for (t2, m, c), v in cpu.items() if t2 == t}
                               for t in {k[0] for k in cpu}},
    }  # fmt: skip
    goals = []
    for peer, goal in (("litellm", 0.5), ("nginx", 5.0)):
        key = (peer, "stream", GOAL_LEVEL)
        if key in cpu:
            ratio = cpu[("gateway", "stream", GOAL_LEVEL)] / cpu[key]
            out[f"cpu_per_request_ratio_vs_{peer}"] = ratio
            goals.append((f"gateway / {peer} CPU per stream at {GOAL_LEVEL}", ratio, goal))
    goals.append((f"added p50 at {GOAL_LEVEL} streams, ms",
                  out["added_p50_ms"][f"stream@{GOAL_LEVEL}"], 1.0))  # fmt: skip
    for what, value, goal in goals:
        print(f"{what}: {value:.3g} (goal <= {goal:g}: {'met' if value <= goal else 'MISSED'})")
    return out


def _print(rows: list[dict], cores: Cores) -> None:
    print_table(
        f"proxies in front of one fake upstream ({LATENCY_MS:.0f} ms, {CHUNKS} chunks); "
        f"cores: proxy {cores.proxy}, upstream {cores.upstream}, client {cores.client}",
        ["target", "mode", "conc", "p50", "added p50", "p99", "added p99", "req/s", "ratio",
         "CPU µs/req"],
        [[r["target"], r["mode"], r["concurrency"], r["p50_ms"], r["added_p50_ms"], r["p99_ms"],
          r["added_p99_ms"], r["rps"], r["throughput_ratio"], r["server_cpu_us"]] for r in rows],
    )  # fmt: skip
    print("(latencies in ms; CPU µs/req: the target's processes, threads and workers included)")
