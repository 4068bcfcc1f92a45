"""Generator concurrency benchmark: `socratic data generate`'s engine against a fake upstream that
answers every request after a fixed latency L, at concurrency C. The ideal rate is C/L requests/s
(C*K/L conversations/s with K conversations per request); the figure is achieved/ideal.

    socratic bench datagen [--quick]

The fake (testkit.fake_generator) runs in its own process and returns K unique, valid Socratic
conversations per request, so every request counts; critique is off (it adds one critic request
per batch and would halve the ideal, not change the ratio). Module imports (openai: about a
second) happen before the clock starts; everything else a run does is timed.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import print_table
from tutor.proc import free_port, spawned

PER_REQUEST = 5


def measure(latency_s: float, concurrency: int, waves: int) -> dict[str, Any]:
    import datagen.realtime  # noqa: F401  (imports openai: ~1 s once per process, not per run)
    from datagen.generate import GenerateArgs, run_generation

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "testkit.fake_generator",
        "--port",
        str(port),
        "--latency-ms",
        str(latency_s * 1000),
    ]
    n = waves * concurrency * PER_REQUEST
    with spawned(cmd, f"http://127.0.0.1:{port}/v1/models"), tempfile.TemporaryDirectory() as tmp:
        args = GenerateArgs(
            out=Path(tmp) / "gen.jsonl",
            n=n,
            per_request=PER_REQUEST,
            exchanges=(2, 4),
            model="fake",
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key="bench",
            concurrency=concurrency,
            critique=False,
            progress=False,
        )
        t0 = time.perf_counter()
        manifest = run_generation(args)
        elapsed = time.perf_counter() - t0
    ideal = concurrency * PER_REQUEST / latency_s
    achieved = manifest.conversations / elapsed
    return {
        "latency_s": latency_s,
        "concurrency": concurrency,
        "conversations": manifest.conversations,
        "seconds": elapsed,
        "conversations_per_s": achieved,
        "ideal_conversations_per_s": ideal,
        "concurrency_efficiency": achieved / ideal,
    }


def run(quick: bool) -> dict[str, Any]:
    latency = 1.0  # seconds; a real LLM takes tens of seconds for K conversations
    waves = 4 if quick else 10
    rows = [measure(latency, c, waves) for c in ((8, 32) if quick else (1, 8, 32, 64))]
    print_table(
        f"generator vs fake upstream: latency {latency:.1f} s, {PER_REQUEST} conversations/request",
        ["concurrency", "conversations", "seconds", "conv/s", "ideal conv/s", "efficiency"],
        [
            [
                r["concurrency"],
                r["conversations"],
                r["seconds"],
                r["conversations_per_s"],
                r["ideal_conversations_per_s"],
                r["concurrency_efficiency"],
            ]
            for r in rows
        ],
    )
    at32 = next(r for r in rows if r["concurrency"] == 32)["concurrency_efficiency"]
    print(f"goal: efficiency >= 0.9 at C = 32: {'met' if at32 >= 0.9 else 'MISSED'} ({at32:.3f})")
    return {
        "concurrency_efficiency": at32,
        "latency_s": latency,
        "per_request": PER_REQUEST,
        "results": rows,
    }
