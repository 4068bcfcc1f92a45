"""Preference pairs for the DPO stage: read, tokenise with the one loss mask, batch, score.

A pair is TRL's conversational preference row: `{"prompt": [messages ending with a user turn],
"chosen": [{"role": "assistant", ...}], "rejected": [{"role": "assistant", ...}]}`. Each side is
rendered as prompt + reply with the model's chat template and masked by the SFT stage's rule
(trainer.data.template_segments): only the reply's content and its closing `<|im_end|>` carry
labels; earlier assistant turns of a multi-turn prompt are context, not trained. The collator
right-pads with the tokenizer's pad (distinct from eos, so the kept end-of-turn is never masked)
and puts the chosen rows first, the rejected rows after them: one forward for both sides.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import TrainError
from trainer.data import IGNORE, template_segments


@dataclass
class PairExample:
    """One tokenised pair; `reference` is [chosen, rejected] log-probs of the frozen SFT model."""

    chosen_ids: list[int]
    chosen_labels: list[int]
    rejected_ids: list[int]
    rejected_labels: list[int]
    reference: list[float] | None = None

    def tokens(self) -> int:
        return len(self.chosen_ids) + len(self.rejected_ids)


@dataclass
class PairStats:
    pairs: int = 0
    too_long: int = 0  # prompt + reply over data.max_seq_len on either side: not trained on
    tokens: int = 0
    reply_tokens: int = 0

    def line(self) -> str:
        return (
            f"{self.pairs} pairs -> {self.tokens} tokens ({self.reply_tokens} in replies), "
            f"over max_seq_len {self.too_long}"
        )


def read_pairs(files: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Every pair of `files` (tutor.pairs.load_pairs): a bad row stops training with one line
    naming file:line and field (`socratic data validate` lists them all)."""
    from tutor.pairs import PairsError, load_pairs

    pairs: list[dict[str, Any]] = []
    for f in files:
        try:
            pairs += load_pairs(f)
        except PairsError as err:
            raise TrainError(f"data.train_files: {err}") from None
    return pairs


def select_pairs(
    pairs: list[dict[str, Any]], n: int | None, seed: int, kinds: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The pairs of `kinds` (all when None; a pair without a kind is kept only then), then `n` of
    them drawn without replacement (seeded; file order kept), or all of them: a subset spans
    every subject of a file grouped by subject."""
    if kinds is not None:
        pairs = [p for p in pairs if p.get("kind") in kinds]
    if n is None or n >= len(pairs):
        return pairs
    import random

    keep = set(random.Random(seed).sample(range(len(pairs)), n))
    return [p for i, p in enumerate(pairs) if i in keep]


def encode_reply(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of prompt + reply; only the last assistant turn carries labels."""
    segments = template_segments(tokenizer, messages)
    last = max(i for i, (_, trained) in enumerate(segments) if trained)
    pieces = tokenizer([text for text, _ in segments], add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    labels: list[int] = []
    for i, piece in enumerate(pieces):
        ids += piece
        labels += piece if i == last else [IGNORE] * len(piece)
    return ids, labels


def encode_pairs(
    tokenizer: Any, pairs: Sequence[dict[str, Any]], system_prompt: str, max_len: int
) -> tuple[list[PairExample], PairStats]:
    """Tokenise pairs (the system prompt inserted when the prompt has none); a pair longer than
    `max_len` on either side is counted in `too_long` and left out (never cut mid-reply)."""
    from tutor.schema import with_system_prompt

    stats = PairStats()
    out = []
    for pair in pairs:
        prompt = with_system_prompt(list(pair["prompt"]), system_prompt)
        c_ids, c_lab = encode_reply(tokenizer, prompt + list(pair["chosen"]))
        r_ids, r_lab = encode_reply(tokenizer, prompt + list(pair["rejected"]))
        if max(len(c_ids), len(r_ids)) > max_len:
            stats.too_long += 1
            continue
        ex = PairExample(c_ids, c_lab, r_ids, r_lab)
        stats.pairs += 1
        stats.tokens += ex.tokens()
        stats.reply_tokens += sum(t != IGNORE for t in c_lab + r_lab)
        out.append(ex)
    return out, stats


def pairs_digest(examples: Sequence[PairExample]) -> str:
    """A key over every token of every pair, in order: reference log-probs belong to it."""
    import hashlib

    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.chosen_ids, ex.chosen_labels, ex.rejected_ids]).encode())
        h.update(json.dumps(ex.rejected_labels).encode())
    return h.hexdigest()


@dataclass
class PairCollator:
    """`[2B, T]` right-padded rows, chosen rows first; `reference` `[B, 2]` when known."""

    pad_id: int

    def __call__(self, batch: list[PairExample]) -> dict[str, Any]:
        import torch

        ids = [ex.chosen_ids for ex in batch] + [ex.rejected_ids for ex in batch]
        labels = [ex.chosen_labels for ex in batch] + [ex.rejected_labels for ex in batch]
        width = max(len(x) for x in ids)
        pad = [width - len(x) for x in ids]
        out = {
            "input_ids": torch.tensor([x + [self.pad_id] * p for x, p in zip(ids, pad, strict=True)]),
            "labels": torch.tensor([x + [IGNORE] * p for x, p in zip(labels, pad, strict=True)]),
            "attention_mask": torch.tensor([[1] * len(x) + [0] * p for x, p in zip(ids, pad, strict=True)]),
        }  # fmt: skip
        if all(ex.reference is not None for ex in batch):
            out["reference"] = torch.tensor([ex.reference for ex in batch], dtype=torch.float32)
        return out


def sequence_logps(model: Any, batch: dict[str, Any], chunk: int) -> tuple[Any, Any]:
    """(summed log-probs [2B], labelled token counts [2B]) of each row's reply, from the last
    hidden states through the chunked LM head (trainer.loss): never the full logits."""
    import torch

    from trainer.loss import causal_lm, chunked_nll_sum

    lm = causal_lm(model)
    hidden = lm.base_model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False
    ).last_hidden_state
    weight = lm.get_output_embeddings().weight
    targets = batch["labels"][:, 1:].to(hidden.device)
    mask = targets != IGNORE
    rows = [
        -chunked_nll_sum(hidden[i, :-1][mask[i]], weight, targets[i][mask[i]], max(chunk, 1))
        for i in range(hidden.shape[0])
    ]
    return torch.stack(rows), mask.sum(dim=1)
