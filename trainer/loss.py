"""Chunked causal-LM cross-entropy: the loss from the last hidden states, a chunk of tokens at a
time, never the full `[tokens x vocab]` logits.

    from trainer.loss import use_chunked_loss
    use_chunked_loss(peft_model, chunk_tokens=256)   # before building the Trainer
    model(input_ids=..., labels=..., position_ids=...).loss     # same value, far less memory

The model's own loss projects every position through the LM head and keeps the float logits,
their log-softmax and its gradient: for 2,048 tokens of SmolLM2's 49,152-entry vocabulary that is
403 MB per copy in float32. Here only the positions that carry a label are projected, `chunk`
tokens at a time, and the gradient with respect to the hidden states (softmax minus one-hot,
times the head's weight) is computed in the same pass, so the backward is one multiplication by
the incoming scale: the same multiplications as the plain loss, one chunk of logits alive at a
time. The patched forward keeps the model's signature, so `Trainer` still passes
`num_items_in_batch` and the loss is reduced exactly like transformers' `ForCausalLMLoss`
(sum / items, or the mean over labelled tokens). Without `labels` the forward is the original
(generation, export and eval with logits are unchanged). Plain torch: runs on CPU and CUDA.
"""

from __future__ import annotations

import functools
import types
from typing import Any

import torch

IGNORE = -100
# Config fields that rescale logits before the softmax; a model with any of them keeps its own loss.
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier")


class ChunkedNLL(torch.autograd.Function):
    """Sum over rows of `-log softmax(hidden @ weight.T)[target]`, `chunk` rows at a time.

    hidden [N, H], weight [V, H], targets [N] (no ignored entries). The gradients are computed
    during the forward (one chunk of float32 logits alive at a time) and scaled in backward.
    """

    @staticmethod
    @torch.autocast("cuda", enabled=False)  # dtypes are the caller's; no casts behind our back
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int):
        want_hidden, want_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.weight_dtype = weight.dtype
        acc = torch.promote_types(hidden.dtype, torch.float32)  # float32 logits at least
        grad_hidden = torch.empty_like(hidden) if want_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=acc) if want_weight else None
        total = torch.zeros((), dtype=acc, device=hidden.device)
        weight = weight.to(hidden.dtype)  # a no-op unless the head and the backbone differ
        for start in range(0, hidden.shape[0], chunk):
            h, t = hidden[start : start + chunk], targets[start : start + chunk]
            logits = (h @ weight.t()).to(acc)  # [c, V]
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if not (want_hidden or want_weight):
                continue
            grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
            grad[torch.arange(len(t), device=t.device), t] -= 1.0  # d(-log p_t) / d(logits)
            grad = grad.to(hidden.dtype)
            if want_hidden:
                torch.mm(grad, weight, out=grad_hidden[start : start + chunk])
            if want_weight:
                grad_weight.addmm_(grad.t().to(acc), h.to(acc))
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_total.to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * grad_total).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None


def chunked_nll_sum(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Summed next-token negative log-likelihood of `targets` [N] given `hidden` [N, H]."""
    return ChunkedNLL.apply(hidden, weight, targets, chunk)


def chunked_causal_loss(
    hidden_states: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    chunk: int,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """transformers' `ForCausalLMLoss` (position t predicts label t+1) from hidden states [B, T, H]:
    the summed NLL over `num_items_in_batch`, or the mean over labelled tokens when it is None."""
    targets = labels[:, 1:].to(hidden_states.device)
    mask = targets != IGNORE
    total = chunked_nll_sum(hidden_states[:, :-1][mask], weight, targets[mask], chunk)
    if num_items_in_batch is None:
        return total / mask.sum().clamp(min=1)
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def causal_lm(model: Any) -> Any:
    """The `*ForCausalLM` module inside a PEFT wrapper (or `model` itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_chunked_loss(lm: Any) -> bool:
    """A causal LM whose logits are `hidden @ lm_head.weight.T` (no bias, scale or softcap)."""
    config = lm.config.get_text_config()
    head = lm.get_output_embeddings()
    return (
        head is not None
        and getattr(head, "bias", None) is None
        and all(getattr(config, name, None) in (None, 1.0) for name in LOGIT_TRANSFORMS)
    )


def use_chunked_loss(model: Any, chunk_tokens: int) -> bool:
    """Make `model(..., labels=...)` return the chunked loss (and no logits). Returns whether it
    did: not when `chunk_tokens` <= 0 or the head transforms its logits (then the model's own
    loss stays)."""
    lm = causal_lm(model)
    if chunk_tokens <= 0 or not supports_chunked_loss(lm):
        return False
    original = lm.forward

    @functools.wraps(type(lm).forward)  # Trainer reads the signature to pass num_items_in_batch
    def forward(self, *args, labels=None, num_items_in_batch=None, **kwargs):
        if labels is None:
            return original(*args, **kwargs)
        from transformers.modeling_outputs import CausalLMOutputWithPast

        out = self.base_model(*args, **kwargs)
        weight = self.get_output_embeddings().weight
        loss = chunked_causal_loss(
            out.last_hidden_state, labels, weight, chunk_tokens, num_items_in_batch
        )
        return CausalLMOutputWithPast(loss=loss, logits=None)

    lm.forward = types.MethodType(forward, lm)
    return True
