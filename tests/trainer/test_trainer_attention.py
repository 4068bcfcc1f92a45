"""Attention per conversation in packed rows (trainer.attention): on the tiny model a packed
batch gives the same loss and gradients as transformers' SDPA over the whole row with its
block-diagonal mask; padded batches and single sequences are unchanged; the segment starts come
from the position ids."""

from __future__ import annotations

import json

import pytest
import torch

from trainer.attention import NAME, segment_starts, use_packed_sdpa
from trainer.data import Collator, encode_all, pack_examples


@pytest.fixture(scope="module")
def models_and_examples(tiny_base, sample_file):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    convs = [json.loads(x)["conversations"] for x in sample_file.read_text().splitlines()[:8]]
    examples, _ = encode_all(tok, convs, 512)
    plain = AutoModelForCausalLM.from_pretrained(tiny_base, attn_implementation="sdpa")
    packed = AutoModelForCausalLM.from_pretrained(tiny_base, attn_implementation="sdpa")
    use_packed_sdpa(packed)
    assert packed.config._attn_implementation == NAME
    return plain.train(), packed.train(), tok, examples


def _loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("packing", [True, False])
def test_same_loss_and_gradients_as_sdpa(models_and_examples, packing) -> None:
    plain, packed, tok, examples = models_and_examples
    rows = pack_examples(examples, 1024)[:2] if packing else examples[:3]
    batch = Collator(tok.pad_token_id, packing)(rows)
    if packing:
        assert len(segment_starts(batch["position_ids"], batch["input_ids"].shape[1])) > 2
    expected, expected_grads = _loss_and_grads(plain, batch)
    loss, grads = _loss_and_grads(packed, batch)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    for name, g in expected_grads.items():
        torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_segment_starts() -> None:
    assert segment_starts(torch.tensor([[0, 1, 2, 0, 1, 0]]), 6) == [0, 3, 5]
    assert segment_starts(torch.tensor([[0, 1, 2, 3]]), 4) is None  # one sequence
    assert segment_starts(torch.tensor([[0, 1, 0, 1]]), 3) is None  # not this row
    assert segment_starts(None, 4) is None
