"""The chunked cross-entropy (trainer.loss): on random tensors its sum and its gradients for the
hidden states and the head's weight equal `F.cross_entropy` over full logits, for chunks smaller
than, equal to and larger than the token count; on the tiny LoRA model a packed and a padded
batch give the same loss as the model's own (full-logits) loss, with and without
`num_items_in_batch`, and the same LoRA gradients; without labels the patched forward still
returns logits; a head that rescales its logits keeps the model's own loss; `train.
loss_chunk_tokens=0` leaves the model unpatched."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from trainer.data import Collator, encode_all, pack_examples
from trainer.loss import chunked_nll_sum, use_chunked_loss


@pytest.mark.parametrize("chunk", [7, 32, 1000])
def test_chunked_nll_matches_cross_entropy(chunk: int) -> None:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(32, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (32,), generator=gen)

    total = chunked_nll_sum(hidden, weight, targets, chunk)
    (total * 0.5).backward()
    expected = F.cross_entropy(hidden.detach() @ weight.detach().t(), targets, reduction="sum")
    h2, w2 = hidden.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    (F.cross_entropy(h2 @ w2.t(), targets, reduction="sum") * 0.5).backward()

    torch.testing.assert_close(total.double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(hidden.grad, h2.grad, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(weight.grad, w2.grad, rtol=1e-6, atol=1e-8)


def test_chunked_nll_without_grad_computes_the_sum_only() -> None:
    hidden, weight = torch.randn(9, 8), torch.randn(20, 8)
    targets = torch.randint(0, 20, (9,))
    with torch.no_grad():
        total = chunked_nll_sum(hidden, weight, targets, 4)
    expected = F.cross_entropy(hidden @ weight.t(), targets, reduction="sum")
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_lora(tiny_base):
    """(plain LoRA model, the same model with the chunked loss, tokenizer, examples)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tutor.paths import SAMPLE_DIR

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_base)
    base = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"])
    plain = get_peft_model(base, lora)
    for name, p in plain.named_parameters():  # LoRA B starts at zero: make the adapter matter
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    chunked = copy.deepcopy(plain)
    assert use_chunked_loss(chunked, chunk_tokens=37)
    lines = (SAMPLE_DIR / "dialogues.jsonl").read_text().splitlines()[:6]
    convs = [json.loads(x)["conversations"] for x in lines]
    examples, _ = encode_all(tok, convs, 256)
    return plain, chunked, tok, examples


def _loss_and_grads(model, batch, items=None):
    model.zero_grad()
    kwargs = {} if items is None else {"num_items_in_batch": items}
    loss = model(**batch, **kwargs).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("items", [None, 900])
def test_model_loss_and_lora_grads_equal_the_full_logits_loss(tiny_lora, packed, items) -> None:
    plain, chunked, tok, examples = tiny_lora
    batch_examples = pack_examples(examples, 1024)[:2] if packed else examples[:3]
    batch = Collator(tok.pad_token_id, packed)(batch_examples)
    expected, grads = _loss_and_grads(plain, batch, items)
    loss, chunked_grads = _loss_and_grads(chunked, batch, items)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert grads.keys() == chunked_grads.keys() and grads
    for name, g in grads.items():
        torch.testing.assert_close(chunked_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_forward_without_labels_still_returns_logits(tiny_lora) -> None:
    plain, chunked, tok, examples = tiny_lora
    ids = torch.tensor([examples[0].input_ids[:20]])
    with torch.no_grad():
        torch.testing.assert_close(chunked(input_ids=ids).logits, plain(input_ids=ids).logits)


def test_scaled_logits_and_zero_chunk_keep_the_models_own_loss(tiny_base) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    original = model.forward
    assert not use_chunked_loss(model, 0)
    model.config.final_logit_softcapping = 30.0
    assert not use_chunked_loss(model, 512)
    assert model.forward == original
