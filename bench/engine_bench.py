"""Engine benchmark: the two engines on this machine side by side, on SmolLM2-135M-Instruct (the
real small model): seconds from launch to a healthy engine, then generated tokens/s for sampled
128-token replies at 1 request and at N concurrent ones (vLLM batches them; `transformers serve`
answers one at a time).

    socratic bench engine [--quick]

Each engine is started the way `socratic serve` starts it (`server.launch.start_engine`: vLLM
through the CPU build in .venv-vllm, `make vllm`) and loaded directly, without the gateway
(`socratic bench gateway` measures that). vLLM is left out, with the reason, where none is usable.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import print_table
from tutor.proc import free_port

MAX_TOKENS = 128
PROMPT = [{"role": "user", "content": "Explain to a student why the sky is blue."}]


async def _one(session: Any, url: str, model: str | None, seed: int) -> int:
    """Completion tokens of one sampled reply."""
    body = {"messages": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0.8, "seed": seed}
    if model:
        body["model"] = model
    async with session.post(url + "/v1/chat/completions", json=body) as r:
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}: {(await r.text())[:200]}")
        return (await r.json())["usage"]["completion_tokens"]


async def _load(url: str, model: str | None, concurrency: int, n: int) -> dict[str, float]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=1800)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _one(session, url, model, seed=0)  # warm-up
        seeds = iter(range(1, n + 1))
        tokens: list[int] = []

        async def worker() -> None:
            for seed in seeds:
                tokens.append(await _one(session, url, model, seed))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {
        "requests": n,
        "tokens": sum(tokens),
        "seconds": wall,
        "tokens_per_s": sum(tokens) / wall,
    }


def _engine(kind: str, model: str, levels: list[int]) -> dict[str, Any]:
    from server.engine import EngineError, EngineSpec, upstream_model
    from server.launch import start_engine

    spec = EngineSpec(model=model, engine=kind, engine_port=free_port(), max_model_len=2048,
                      engine_start_timeout_s=1800)  # fmt: skip
    started = time.monotonic()
    try:
        engine = start_engine(spec, kind, echo=False)
    except EngineError as e:
        return {"skipped": str(e).splitlines()[0]}
    result: dict[str, Any] = {"start_s": time.monotonic() - started, "levels": {}}
    try:
        for c in levels:
            load = _load(spec.url, upstream_model(spec, kind), c, n=max(3, c))  # one round
            result["levels"][str(c)] = asyncio.run(load)
    finally:
        engine.stop()
    return result


def run(quick: bool = False) -> dict[str, Any]:
    from server.engine import resolve_engine
    from trainer.gguf_import import bundled_model_dir

    model = str(bundled_model_dir())
    levels = [1, 4] if quick else [1, 16]
    engines: dict[str, Any] = {"transformers": _engine("transformers", model, levels)}
    if resolve_engine("auto") == "vllm":
        engines["vllm"] = _engine("vllm", model, levels)
    else:
        engines["vllm"] = {"skipped": "no usable vLLM here (make vllm builds its CPU build)"}
    rows = []
    for kind, r in engines.items():
        if "skipped" in r:
            rows.append([kind, "-", "-", "-", r["skipped"][:60]])
            continue
        for c, level in r["levels"].items():
            rows.append([kind, r["start_s"], c, level["tokens_per_s"], level["tokens"]])
    print_table(
        f"engines on {model.rsplit('/', 1)[-1]}, sampled {MAX_TOKENS}-token replies",
        ["engine", "start s", "concurrent", "tokens/s", "tokens"],
        rows,
    )
    return {"model": model, "max_tokens": MAX_TOKENS, "engines": engines}
