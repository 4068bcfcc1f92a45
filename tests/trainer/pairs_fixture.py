"""Small templated preference pairs for the DPO tests: a student states a sum or a product, right
or wrong; the chosen reply checks a wrong claim and confirms a right one briefly, the rejected one
accepts the wrong claim or doubts the right one. `seed` picks numbers, so train and held-out sets
built with different seeds share no claim.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OPS = {"+": ("plus", lambda a, b: a + b), "x": ("times", lambda a, b: a * b)}


def claim_pair(a: int, b: int, op: str, wrong: bool) -> dict:
    word, fn = OPS[op]
    true = fn(a, b)
    said = true + (1 if (a + b) % 2 else -1) if wrong else true
    prompt = [{"role": "user", "content": f"I think {a} {word} {b} is {said}. Is that right?"}]
    if wrong:
        chosen = f"Let's check that. What do you get if you work out {a} {word} {b} step by step?"
        rejected = f"Yes, {a} {word} {b} is {said}. Well done!"
    else:
        chosen = f"Yes, {a} {word} {b} is {said}. Well done!"
        rejected = f"Let's check that. What do you get if you work out {a} {word} {b} step by step?"
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def arithmetic_pairs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        claim_pair(rng.randint(2, 12), rng.randint(2, 12), rng.choice("+x"), wrong=i % 2 == 0)
        for i in range(n)
    ]


def write_pairs(path: Path, pairs: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    return path
