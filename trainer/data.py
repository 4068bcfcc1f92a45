"""Tokenisation, loss masks and packing shared by every backend.

`encode_conversation` renders a conversation with the model's own chat template and returns
`input_ids` and `labels`, where only each assistant turn's content and its closing end-of-turn
token (`<|im_end|>` for Qwen2.5) carry labels; the system prompt, user turns and the
`<|im_start|>assistant\\n` headers are -100. `pack_examples` puts whole conversations into bins
(best-fit decreasing) whose position ids restart per conversation; `Collator` turns a list of
examples into a padding-free row (packing) or a right-padded batch with an attention mask.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import TrainError

IGNORE = -100


@dataclass
class Example:
    """One training sequence; `seq_lengths` lists the conversations packed into it, in order."""

    input_ids: list[int]
    labels: list[int]
    seq_lengths: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class EncodeStats:
    conversations: int = 0
    truncated: int = 0  # cut at max_seq_len but kept (some assistant tokens remain)
    dropped: int = 0  # every assistant token was cut: not trained on
    tokens: int = 0
    label_tokens: int = 0
    bins: int = 0
    # packed: real tokens / (bins * max_seq_len); padded: real tokens / sum of B x longest
    real_token_share: float = 1.0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        s = (
            f"{self.conversations} conversations -> {self.tokens} tokens "
            f"({self.label_tokens} trained), truncated {self.truncated}, dropped {self.dropped}"
        )
        if self.bins:
            s += f"; packed into {self.bins} bins"
        s += f", real-token share {self.real_token_share:.1%}"
        return s


def template_segments(tokenizer: Any, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """Split the rendered conversation into (text, trained) pieces, in order.

    Each assistant turn's trained piece runs from the end of the generation prompt (the
    `<|im_start|>assistant\\n` header) to the end of the first eos token after it. Relies on the
    template rendering each prefix of the conversation as a prefix of the whole (true of ChatML).
    """
    eos = tokenizer.eos_token
    full = _render(tokenizer, messages, gen_prompt=False)
    segments: list[tuple[str, bool]] = []
    pos = 0
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        head = _render(tokenizer, messages[:i], gen_prompt=True)
        if not full.startswith(head) or len(head) < pos:
            raise TrainError("chat template does not render conversation prefixes as prefixes")
        start = len(head)
        end = full.find(eos, start + len(msg["content"]))
        if end < 0 or not full[start:end].startswith(msg["content"]):
            raise TrainError(f"assistant turn {i} is not followed by eos {eos!r} in the template")
        end += len(eos)
        segments += [(full[pos:start], False), (full[start:end], True)]
        pos = end
    if pos < len(full):
        segments.append((full[pos:], False))
    return [s for s in segments if s[0]]


def encode_conversation(
    tokenizer: Any, messages: list[dict[str, str]], max_len: int | None = None
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one conversation; labels are -100 outside assistant turns.

    Each piece is tokenised on its own, so a token never straddles a mask boundary; this is also
    how inference sees it (the prompt ends at `assistant\\n`, generation starts fresh).
    """
    ids: list[int] = []
    labels: list[int] = []
    segments = template_segments(tokenizer, messages)
    pieces = tokenizer([text for text, _ in segments], add_special_tokens=False)["input_ids"]
    for (_text, trained), piece in zip(segments, pieces, strict=True):  # one batched call
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    if max_len is not None:
        ids, labels = ids[:max_len], labels[:max_len]
    return ids, labels


def encode_all(
    tokenizer: Any, conversations: Sequence[list[dict[str, str]]], max_len: int
) -> tuple[list[Example], EncodeStats]:
    """Encode conversations, dropping the ones whose assistant tokens were all truncated."""
    stats = EncodeStats()
    out = []
    for msgs in conversations:
        stats.conversations += 1
        ids, labels = encode_conversation(tokenizer, msgs)
        cut = len(ids) > max_len
        ids, labels = ids[:max_len], labels[:max_len]
        if all(t == IGNORE for t in labels[1:]):
            stats.dropped += 1
            continue
        stats.truncated += cut
        stats.tokens += len(ids)
        stats.label_tokens += sum(t != IGNORE for t in labels[1:])
        out.append(Example(ids, labels, [len(ids)]))
    return out, stats


def pack_examples(examples: Sequence[Example], capacity: int) -> list[Example]:
    """Best-fit decreasing: each conversation goes to the fullest bin it still fits in."""
    bins: list[list[Example]] = []
    free: list[int] = []
    for ex in sorted(examples, key=len, reverse=True):
        fits = [i for i, room in enumerate(free) if room >= len(ex)]
        if fits:
            i = min(fits, key=lambda j: free[j])
            bins[i].append(ex)
            free[i] -= len(ex)
        else:
            bins.append([ex])
            free.append(capacity - len(ex))
    return [
        Example(
            [t for e in b for t in e.input_ids],
            [t for e in b for t in e.labels],
            [n for e in b for n in e.seq_lengths],
        )
        for b in bins
    ]


def padded_share(lengths: Sequence[int], batch_size: int) -> float:
    """Real tokens / padded tokens when consecutive `batch_size` sequences are right-padded to
    their longest (1.0 for no sequences)."""
    batches = [lengths[i : i + batch_size] for i in range(0, len(lengths), batch_size)]
    padded = sum(len(b) * max(b) for b in batches)
    return sum(lengths) / padded if padded else 1.0


def split_eval(items: list, share: float, seed: int) -> tuple[list, list]:
    """Deterministic shuffle, then hold out `share` (at least one item when share > 0)."""
    if share <= 0 or len(items) < 2:
        return list(items), []
    order = list(items)
    random.Random(seed).shuffle(order)
    n_eval = min(len(order) - 1, max(1, round(len(order) * share)))
    return order[n_eval:], order[:n_eval]


def load_conversations(
    files: Sequence[str | Path],
    system_prompt: str,
    fmt: str | None,
    max_exchanges: int | None,
    dedupe: bool,
) -> tuple[list[list[dict[str, str]]], Any]:
    """Read and validate training files; every row is counted in the returned `Report`."""
    from tutor.data import Report, iter_conversations
    from tutor.schema import Limits

    report = Report()
    convs = [
        c.messages
        for c in iter_conversations(
            files,
            report,
            fmt=fmt,
            limits=Limits(max_exchanges=max_exchanges),
            system_prompt=system_prompt,
            dedupe=dedupe,
        )
    ]
    report.check()
    return convs, report


@dataclass
class Collator:
    """Batch examples for the model.

    packed=True: one padding-free row `[1, sum(len)]` with `position_ids` restarting at every
    conversation (transformers builds a block-diagonal causal mask from them when no KV cache is
    in use, hence `use_cache=False`; flash-attention derives `cu_seqlens`), plus `packed_seq_lengths` when `seq_lengths_key` is set (unsloth).
    packed=False: right-padded `[B, max_len]` with `attention_mask`; pad labels are -100.
    """

    pad_id: int
    packed: bool = True
    seq_lengths_key: str | None = None

    def __call__(self, batch: list[Example]) -> dict[str, Any]:
        import torch

        if self.packed:
            lengths = [n for ex in batch for n in ex.seq_lengths]
            labels = [t for ex in batch for t in ex.labels]
            starts = [sum(lengths[:i]) for i in range(len(lengths))]
            for s in starts:  # the first target of a conversation never looks at the previous one
                labels[s] = IGNORE
            out = {
                "input_ids": torch.tensor([[t for ex in batch for t in ex.input_ids]]),
                "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([[p for n in lengths for p in range(n)]]),
                # transformers only derives the per-conversation mask without a KV cache
                "use_cache": False,
            }
            if self.seq_lengths_key:
                out[self.seq_lengths_key] = torch.tensor(lengths, dtype=torch.int32)
            return out
        width = max(len(ex) for ex in batch)
        pad = [width - len(ex) for ex in batch]
        return {
            "input_ids": torch.tensor(
                [ex.input_ids + [self.pad_id] * p for ex, p in zip(batch, pad, strict=True)]
            ),
            "labels": torch.tensor(
                [ex.labels + [IGNORE] * p for ex, p in zip(batch, pad, strict=True)]
            ),
            "attention_mask": torch.tensor(
                [[1] * len(ex) + [0] * p for ex, p in zip(batch, pad, strict=True)]
            ),
        }


def _render(tokenizer: Any, messages: list[dict[str, str]], gen_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen_prompt)
