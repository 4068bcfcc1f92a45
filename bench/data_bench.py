"""Data pipeline benchmark: tokenise, mask and pack conversations; real-token share of packing
against padding each batch to its longest sequence.

    socratic bench data [--quick]

The corpus (20,000 conversations; 2,000 with --quick) is built from the bundled sample: each
conversation keeps a random number of its exchanges and may splice in exchanges from another, so
lengths vary. Two tokenizers: the tiny one (vocab ~2k) and a byte-level BPE trained with Qwen2.5's
vocabulary size as its target on all bundled text (it reaches fewer entries: the text is small).
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench.common import print_table

QWEN_VOCAB = 151_665  # Qwen2.5's tokenizer size (151,643 BPE entries + 22 special tokens)
MAX_SEQ_LEN = 2048  # the GPU preset's max_seq_len
BATCH = 2  # the GPU preset's per-device batch size


def make_corpus(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """`n` conversations of varied length built from the sample's exchanges."""
    from tutor.io import read_rows
    from tutor.paths import SAMPLE_DIR
    from tutor.schema import parse_conversation

    base = [parse_conversation(r.value).messages for r in read_rows(SAMPLE_DIR / "dialogues.jsonl")]
    rng = random.Random(seed)
    corpus = []
    for _ in range(n):
        first, second = rng.choice(base), rng.choice(base)
        pairs = _exchanges(first)[: rng.randint(1, len(_exchanges(first)))]
        if rng.random() < 0.5:
            pairs += _exchanges(second)[: rng.randint(1, len(_exchanges(second)))]
        corpus.append([first[0], *[m for pair in pairs for m in pair]])
    return corpus


def _exchanges(msgs: list[dict[str, str]]) -> list[tuple[dict, dict]]:
    body = msgs[1:] if msgs[0]["role"] == "system" else msgs
    return [(body[i], body[i + 1]) for i in range(0, len(body) - 1, 2)]


def qwen_sized_tokenizer() -> Any:
    from trainer.tiny import build_tokenizer, sample_texts
    from tutor.io import read_rows
    from tutor.paths import EVAL_DIR

    texts = sample_texts()
    for path in sorted(EVAL_DIR.glob("*.jsonl")):
        texts += [m["content"] for r in read_rows(path) for m in r.value["messages"]]
    return build_tokenizer(texts, vocab_size=QWEN_VOCAB)


def padded_share(lengths: list[int], batch: int) -> float:
    """Real tokens / tokens computed when each batch (in order) is padded to its longest."""
    total = sum(
        max(lengths[i : i + batch]) * len(lengths[i : i + batch])
        for i in range(0, len(lengths), batch)
    )
    return sum(lengths) / total


def measure(name: str, tokenizer: Any, corpus: list) -> dict[str, Any]:
    from trainer.data import encode_all, pack_examples

    t0 = time.perf_counter()
    examples, stats = encode_all(tokenizer, corpus, MAX_SEQ_LEN)
    t_encode = time.perf_counter() - t0
    t0 = time.perf_counter()
    bins = pack_examples(examples, MAX_SEQ_LEN)
    t_pack = time.perf_counter() - t0
    lengths = [len(e) for e in examples]
    random.Random(0).shuffle(lengths)  # the trainer's sampler shuffles before batching
    real = sum(lengths)
    return {
        "tokenizer": name,
        "vocab_size": len(tokenizer),
        "conversations": len(corpus),
        "kept": len(examples),
        "tokens": real,
        "mean_tokens": real / max(1, len(examples)),
        "encode_conversations_per_s": len(corpus) / t_encode,
        "pack_conversations_per_s": len(examples) / t_pack,
        "bins": len(bins),
        "packing_efficiency": real / (len(bins) * MAX_SEQ_LEN),
        "padded_efficiency": padded_share(lengths, BATCH),
        "truncated": stats.truncated,
        "dropped": stats.dropped,
    }


def run(quick: bool) -> dict[str, Any]:
    from trainer.tiny import build_tokenizer, sample_texts

    corpus = make_corpus(2_000 if quick else 20_000)
    rows = [
        measure("tiny", build_tokenizer(sample_texts()), corpus),
        measure("qwen-sized", qwen_sized_tokenizer(), corpus),
    ]
    print_table(
        f"data pipeline: {len(corpus):,} conversations, max_seq_len {MAX_SEQ_LEN}, batch {BATCH}",
        [
            "tokenizer",
            "vocab",
            "mean tok",
            "encode conv/s",
            "pack conv/s",
            "packed share",
            "padded share",
        ],
        [
            [
                r["tokenizer"],
                r["vocab_size"],
                r["mean_tokens"],
                r["encode_conversations_per_s"],
                r["pack_conversations_per_s"],
                r["packing_efficiency"],
                r["padded_efficiency"],
            ]
            for r in rows
        ],
    )
    goal = min(r["packing_efficiency"] for r in rows)
    print(
        f"goal: packed real-token share >= 0.95: {'met' if goal >= 0.95 else 'MISSED'} ({goal:.3f})"
    )
    return {"packing_efficiency": goal, "max_seq_len": MAX_SEQ_LEN, "batch": BATCH, "results": rows}
