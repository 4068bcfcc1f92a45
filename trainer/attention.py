"""Attention for packed rows without a variable-length kernel: one causal SDPA call per
conversation inside the row, never attention over the whole row.

    from trainer.attention import use_packed_sdpa
    use_packed_sdpa(model)   # the hf backend does this when data.packing is on and attention is sdpa

A packed row holds several conversations; transformers keeps them apart with a block-diagonal
mask built from the position ids, and SDPA then computes (and differentiates) the scores of the
whole row and masks most of them: for a 2,048-token row of 250-token conversations about 8 times
the work and the memory that attention needs. FlashAttention's varlen path avoids that on GPU;
PyTorch's CPU SDPA has no such path. Here a row whose position ids restart is cut at each restart
and every piece goes through SDPA as a plain causal sequence (its fast kernel, no mask), the
outputs are joined again. Anything else (padded batches with an attention mask, generation with
a KV cache, a single sequence) goes to transformers' SDPA unchanged. Registered with
transformers' attention and mask interfaces under NAME; the model's weights are not touched.
"""

from __future__ import annotations

from typing import Any

NAME = "sdpa_packed"


def packed_sdpa_attention(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
) -> tuple[Any, None]:
    """SDPA per conversation for one packed row ([1, heads, T, dim], position ids restarting at
    each conversation, no mask); transformers' SDPA for everything else."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.pop("position_ids", None)
    starts = segment_starts(position_ids, query.shape[2]) if attention_mask is None else None
    if not starts or query.shape[0] != 1 or key.shape[2] != query.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    ends = [*starts[1:], query.shape[2]]
    pieces = [
        sdpa_attention_forward(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None,
                               **kwargs)[0]
        for a, b in zip(starts, ends, strict=True)
    ]  # fmt: skip
    return torch.cat(pieces, dim=1), None  # [1, T, heads, dim], as SDPA returns it


def segment_starts(position_ids: Any, length: int) -> list[int] | None:
    """Where each packed conversation starts (position id 0), or None when the row is a single
    sequence or the ids do not describe this row."""
    if position_ids is None or position_ids.shape[0] != 1 or position_ids.shape[-1] != length:
        return None
    starts = (position_ids[0] == 0).nonzero().flatten().tolist()
    if len(starts) < 2 or starts[0] != 0:
        return None
    return starts


def packed_sdpa_mask(*args: Any, **kwargs: Any) -> Any:
    """No mask without padding and without a cache (a packed row is cut per conversation by the
    attention, a single sequence is plainly causal); SDPA's own mask otherwise."""
    from transformers.masking_utils import sdpa_mask

    no_cache = kwargs.get("q_offset", 0) == 0 and kwargs.get("q_length") == kwargs.get("kv_length")
    if kwargs.get("attention_mask") is None and no_cache:
        return None
    return sdpa_mask(*args, **kwargs)


def use_packed_sdpa(model: Any) -> None:
    """Register NAME with transformers and switch `model` (a transformers model) to it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, packed_sdpa_attention)
    AttentionMaskInterface.register(NAME, packed_sdpa_mask)
    model.set_attn_implementation(NAME)
