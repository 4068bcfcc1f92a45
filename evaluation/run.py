"""`socratic eval run`: send every held-out item to each endpoint and score the replies offline.

    socratic eval run --endpoint base=http://127.0.0.1:8000 --endpoint tuned=http://127.0.0.1:8001 \
        --out reports/base-vs-tuned

Every endpoint gets the same messages (the tutor system prompt + the item's conversation) and the
same sampling settings and seed. Writes `OUT/responses.jsonl` (one row per item x endpoint, with
`metrics`, or `error` when the call failed after its retries) and `OUT/run.json` (the resolved
settings). Responses are cached under `OUT/cache/` unless another cache directory is given.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict
from pathlib import Path

from evaluation.client import CallFailed, Chat, Sampling
from evaluation.tasks import EvalItem, load_eval_set
from tutor.io import atomic_open, write_jsonl
from tutor.paths import EVAL_DIR
from tutor.prompts import TUTOR_SYSTEM_PROMPT

DEFAULT_SAMPLING = Sampling()


def run_eval(
    endpoints: dict[str, str],
    out_dir: str | Path,
    eval_set: str | Path = EVAL_DIR,
    model: str | None = None,
    limit: int | None = None,
    *,
    sampling: Sampling = DEFAULT_SAMPLING,
    concurrency: int = 4,
    retries: int = 2,
    timeout_s: float = 120.0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Query every endpoint ({name: url}) with every item; return the run directory.

    `model` is the model name sent to every endpoint (default: each endpoint's first listed
    model); `limit` keeps the first N items of each eval file.
    """
    if not endpoints:
        raise ValueError("endpoints: give at least one NAME=URL")
    out = Path(out_dir)
    items = load_eval_set(eval_set, limit)
    cache = Path(cache_dir) if cache_dir else out / "cache"
    started = time.time()
    rows, models = asyncio.run(
        _run_all(
            items, endpoints, model, sampling, concurrency, retries, timeout_s, cache, progress
        )
    )
    write_jsonl(out / "responses.jsonl", rows)
    config = {
        "endpoints": endpoints,
        "models": models,
        "eval_set": str(eval_set),
        "limit": limit,
        "items": len(items),
        "sampling": asdict(sampling),
        "system_prompt": TUTOR_SYSTEM_PROMPT,
        "concurrency": concurrency,
        "retries": retries,
        "timeout_s": timeout_s,
        "failed": sum(1 for r in rows if r.get("error")),
        "seconds": round(time.time() - started, 1),
    }
    with atomic_open(out / "run.json") as f:
        json.dump(config, f, indent=2)
    return out


async def _run_all(items, endpoints, model, sampling, concurrency, retries, timeout_s, cache, bar):
    from tqdm import tqdm

    chats = {
        name: Chat(url, model, cache_dir=cache, concurrency=concurrency, retries=retries,
                   timeout_s=timeout_s)
        for name, url in endpoints.items()
    }  # fmt: skip
    try:
        models = {}
        for name, chat in chats.items():
            try:
                models[name] = await chat.resolve_model()
            except CallFailed as e:
                raise CallFailed(f"endpoint {name}: {e}") from None
        jobs = [(item, name) for item in items for name in chats]
        with tqdm(total=len(jobs), desc="eval run", unit="reply", disable=not bar) as pbar:

            async def one(item: EvalItem, name: str) -> dict:
                row = await _answer(item, name, chats[name], sampling)
                pbar.update(1)
                return row

            rows = await asyncio.gather(*(one(item, name) for item, name in jobs))
    finally:
        for chat in chats.values():
            await chat.close()
    return list(rows), models


async def _answer(item: EvalItem, endpoint: str, chat: Chat, sampling: Sampling) -> dict:
    row = {
        "id": item.id,
        "endpoint": endpoint,
        "subject": item.subject,
        "kind": item.kind,
        "good_move": item.good_move,
        "messages": item.messages,
        "reference_answer": item.reference_answer,
    }
    try:
        response = await chat.complete(item.prompt(), sampling)
    except CallFailed as e:
        return {**row, "response": None, "error": str(e), "metrics": None}
    return {**row, "response": response, "error": None, "metrics": item.score(response)}
