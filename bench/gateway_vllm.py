"""The gateway in front of the real vLLM engine (its CPU build): generated tokens/s sent straight
to vLLM and through the gateway, at 1 and 8 concurrent streams.

    socratic bench gateway --vllm [--quick]
    VLLM_PYTHON=/path/to/venv/bin/python socratic bench gateway --vllm

vLLM is the one `socratic serve --engine vllm` finds (VLLM_CMD, VLLM_PYTHON, the checkout's
`.venv-vllm`, `vllm` on PATH) with the same command line (server/engine.py), on the real small
model (SmolLM2-135M-Instruct; on CPU float32, eager mode, 1 GiB of KV cache); it starts once. The
gateway (`socratic serve --engine-url`) sits in front of it. Every request is
the same tutor conversation, system prompt included (the gateway keeps a client's own, so both
paths send vLLM the same prompt), greedy, streamed with usage; tokens/s = completion tokens over
wall time. Direct and gateway alternate in rounds (one request per stream each), and each
gateway round is compared with the direct round just before it, so drifting load on a shared
machine hits both alike; the figure is the median of those paired ratios. Goal: gateway /
direct tokens/s >= 0.97 at 1 and at 8 streams.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

from bench.common import cpu_seconds, print_table
from bench.gateway_bench import GATEWAY_ENV
from server.engine import EngineSpec
from server.engine import vllm_command as engine_vllm_command
from tutor.proc import free_port, spawned
from tutor.prompts import TUTOR_SYSTEM_PROMPT
from tutor.vllm import CPU_ENV, VLLM_INSTALL, VllmInstall, find_vllm, vllm_on_cpu

MODEL = "socratic-tutor"
GOAL = 0.97
MESSAGES = [
    {"role": "system", "content": TUTOR_SYSTEM_PROMPT},
    {"role": "user", "content": "Why does ice float on water if it is made of the same stuff?"},
]


def vllm_command(install: VllmInstall, model: str, port: int) -> list[str]:
    """The engine's command line from the one flag builder `socratic serve` uses (server/engine.py;
    on vLLM's CPU build its CPU defaults: float32, eager mode, one-step prefill)."""
    spec = EngineSpec(model=model, served_model_name=MODEL, engine_port=port,
                      vllm_extra_args="--max-num-seqs 16 --uvicorn-log-level warning")  # fmt: skip
    return engine_vllm_command(spec, install.launcher, cpu=vllm_on_cpu(install))


async def _stream_once(session: Any, url: str, max_tokens: int) -> int:
    """One streamed completion; its completion tokens (from the usage chunk)."""
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    tokens = 0
    async with session.post(url + "/v1/chat/completions", json=body) as r:
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}: {(await r.text())[:300]}")
        async for line in r.content:
            if line.startswith(b"data: {") and b'"usage"' in line:
                usage = json.loads(line[6:]).get("usage") or {}
                tokens = usage.get("completion_tokens") or tokens
    if not tokens:
        raise RuntimeError(f"{url}: no usage in the stream")
    return tokens


async def _round(url: str, c: int, n: int, max_tokens: int, pid: int) -> dict[str, float]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        queue, tokens = iter(range(n)), []

        async def worker() -> None:
            for _ in queue:
                tokens.append(await _stream_once(session, url, max_tokens))

        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        return {"tokens": sum(tokens), "seconds": time.perf_counter() - t0,
                "cpu_seconds": cpu_seconds(pid) - cpu0, "requests": n}  # fmt: skip


def run(quick: bool) -> dict[str, Any]:
    install = find_vllm()
    if install is None:
        why = f"no vLLM: {VLLM_INSTALL}"
        print(f"gateway --vllm: skipped ({why})")
        return {"skipped": why}
    from trainer.gguf_import import bundled_model_dir

    model = str(bundled_model_dir())
    max_tokens, rounds = (48, 6) if quick else (128, 10)
    per_round = {1: 1, 8: 8}  # requests per round: one per stream
    eng_port, gw_port = free_port(), free_port()
    engine, gateway = f"http://127.0.0.1:{eng_port}", f"http://127.0.0.1:{gw_port}"
    eng_env = {**os.environ, **CPU_ENV, "HF_HUB_OFFLINE": "1"}
    gw_cmd = [sys.executable, "-m", "tutor.cli", "serve", "--engine-url", engine,
              "--port", str(gw_port), "--log-level", "WARNING"]  # fmt: skip
    gw_env = {**GATEWAY_ENV, "UPSTREAM_MODEL": MODEL, "SERVED_MODEL_NAME": MODEL}
    print(f"starting vLLM ({install.source})", flush=True)
    totals: dict[tuple[str, int], list[dict]] = {}
    with (
        spawned(vllm_command(install, model, eng_port), engine + "/health", 900, eng_env) as eng,
        spawned(gw_cmd, gateway + "/ready", env=gw_env) as gw,
    ):
        asyncio.run(_round(engine, 1, 1, 8, eng.pid))  # warm-up
        for c, n in per_round.items():
            for _ in range(rounds):
                for name, url, pid in (("direct", engine, eng.pid), ("gateway", gateway, gw.pid)):
                    totals.setdefault((name, c), []).append(
                        asyncio.run(_round(url, c, n, max_tokens, pid))
                    )
    return _figures(totals, model, max_tokens)


def _figures(totals: dict, model: str, max_tokens: int) -> dict[str, Any]:
    rows = []
    for (name, c), parts in totals.items():
        tokens = sum(p["tokens"] for p in parts)
        seconds = sum(p["seconds"] for p in parts)
        requests = sum(p["requests"] for p in parts)
        cpu = sum(p["cpu_seconds"] for p in parts)
        rows.append({"target": name, "concurrency": c, "requests": requests, "tokens": tokens,
                     "tokens_per_s": tokens / seconds, "cpu_ms_per_request": cpu / requests * 1e3,
                     "round_tokens_per_s": [p["tokens"] / p["seconds"] for p in parts]})  # fmt: skip
    by = {(r["target"], r["concurrency"]): r for r in rows}
    # each gateway round against the direct round just before it: drift in the machine's load
    # between rounds cancels out; the median of those paired ratios is the figure
    ratios, totals_ratio = {}, {}
    for c in sorted({c for (_t, c) in by}):
        paired = [g / d for g, d in zip(by[("gateway", c)]["round_tokens_per_s"],
                                        by[("direct", c)]["round_tokens_per_s"], strict=True)]  # fmt: skip
        ratios[f"stream@{c}"] = statistics.median(paired)
        totals_ratio[f"stream@{c}"] = (
            by[("gateway", c)]["tokens_per_s"] / by[("direct", c)]["tokens_per_s"]
        )
    print_table(
        f"vLLM CPU engine direct vs through the gateway ({max_tokens} tokens max, greedy)",
        ["target", "streams", "requests", "tokens", "tokens/s", "CPU ms/req (process)"],
        [[r["target"], r["concurrency"], r["requests"], r["tokens"], r["tokens_per_s"],
          r["cpu_ms_per_request"]] for r in rows],
    )  # fmt: skip
    print("(CPU ms/req: vLLM's processes for direct, the gateway's for gateway)")
    for key, ratio in ratios.items():
        print(f"gateway / direct tokens/s at {key}: {ratio:.3f} median of paired rounds, "
              f"{totals_ratio[key]:.3f} overall (goal >= {GOAL}: "
              f"{'met' if ratio >= GOAL else 'MISSED'})")  # fmt: skip
    return {"model": model, "max_tokens": max_tokens, "results": rows,
            "tokens_per_s_ratio": ratios, "tokens_per_s_ratio_overall": totals_ratio}  # fmt: skip
