"""TRL 1.15's fused LM head on a machine without Triton: a plain-torch twin of its kernel.

TRL's `SFTTrainer` always computes its loss through `trl.kernels.ChunkedLogProbFunction`, a
Triton kernel; on a CPU-only machine (no Triton) `trl.trainer.utils._ChunkedLogProbFunction` is
None and the first training step raises `AttributeError: 'NoneType' object has no attribute
'apply'`. `install()` puts this twin in its place. It follows the kernel's algorithm, not a
cheaper one: tiles of 4,096 tokens x 32,768 vocabulary entries, an online logsumexp across the
vocabulary tiles, only the hidden states and log Z saved, every tile recomputed in backward, and
the same outputs (log-probabilities, entropy, top-1 flags, and the mean logit per token that
`DPOTrainer` logs: `hidden @ weight.mean(0) * scale`), so TRL runs here as it does on a GPU.
"""

from __future__ import annotations

import torch

TOKEN_CHUNK = 4096  # trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE


class TorchChunkedLogProb(torch.autograd.Function):
    """`ChunkedLogProbFunction.apply(hidden [N,H], weight [V,H], bias, targets [N], temperature,
    chunk_size, softcap, logit_scale, outputs)` -> (log_probs, entropy, None, mean_logits, is_top1);
    mean_logits (no gradient) only when `outputs` asks for it, as the kernel does."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, chunk_size, softcap=None,
                logit_scale=1.0, outputs=("entropy", "is_top1")):  # fmt: skip
        if bias is not None or softcap is not None:
            raise NotImplementedError("the CPU twin covers heads without bias or softcapping")
        ctx.scale = logit_scale / temperature
        ctx.chunk_size = chunk_size
        n = hidden.shape[0]
        log_z = hidden.new_empty(n, dtype=torch.float32)
        entropy = hidden.new_empty(n, dtype=torch.float32)
        target_logit = hidden.new_empty(n, dtype=torch.float32)
        best = hidden.new_empty(n, dtype=torch.float32)
        for t0 in range(0, n, TOKEN_CHUNK):
            rows = slice(t0, t0 + TOKEN_CHUNK)
            stats = _tile_stats(hidden[rows], weight, targets[rows], ctx.scale, chunk_size)
            log_z[rows], entropy[rows], target_logit[rows], best[rows] = stats
        ctx.save_for_backward(hidden, weight, targets, log_z)
        is_top1 = target_logit >= best
        mean_logits = None
        if "mean_logits" in outputs:  # DPOTrainer's logits/* metrics
            mean_logits = (hidden @ weight.mean(dim=0)).float() * ctx.scale
            ctx.mark_non_differentiable(is_top1, mean_logits)
        else:
            ctx.mark_non_differentiable(is_top1)
        return target_logit - log_z, entropy, None, mean_logits, is_top1

    @staticmethod
    def backward(ctx, grad_log_probs, grad_entropy, *_):
        if grad_entropy is not None and bool(grad_entropy.any()):
            raise NotImplementedError("the CPU twin has no entropy gradient (SFT logs it only)")
        hidden, weight, targets, log_z = ctx.saved_tensors
        grad_hidden = torch.zeros_like(hidden, dtype=torch.float32)
        for t0 in range(0, hidden.shape[0], TOKEN_CHUNK):
            rows = slice(t0, t0 + TOKEN_CHUNK)
            h, t, g = hidden[rows], targets[rows], grad_log_probs[rows].float()
            for v0 in range(0, weight.shape[0], ctx.chunk_size):
                w = weight[v0 : v0 + ctx.chunk_size]
                z = (h @ w.t()).float() * ctx.scale  # recomputed, as the kernel does
                # d log p_t / d z_v = [v == t] - p_v
                tile = z.sub_(log_z[rows, None]).exp_().mul_(-g[:, None])
                inside = (t >= v0) & (t < v0 + w.shape[0])
                tile[inside.nonzero().squeeze(1), t[inside] - v0] += g[inside]
                grad_hidden[rows] += (tile * ctx.scale).to(w.dtype) @ w
        return grad_hidden.to(hidden.dtype), None, None, None, None, None, None, None, None


def _tile_stats(h, weight, targets, scale, chunk_size):
    """(log Z, entropy, target logit, max logit) of `h @ weight.T * scale`, vocabulary tile by
    tile with a running max (online logsumexp)."""
    n = h.shape[0]
    run_max = h.new_full((n,), float("-inf"), dtype=torch.float32)
    sum_exp = h.new_zeros(n, dtype=torch.float32)
    x_sum_exp = h.new_zeros(n, dtype=torch.float32)
    target_logit = h.new_zeros(n, dtype=torch.float32)
    for v0 in range(0, weight.shape[0], chunk_size):
        z = (h @ weight[v0 : v0 + chunk_size].t()).float() * scale
        new_max = torch.maximum(run_max, z.max(dim=1).values)
        rescale = torch.exp(run_max - new_max)
        e = torch.exp(z - new_max[:, None])
        sum_exp = sum_exp * rescale + e.sum(dim=1)
        x_sum_exp = x_sum_exp * rescale + (z * e).sum(dim=1)
        run_max = new_max
        inside = (targets >= v0) & (targets < v0 + z.shape[1])
        target_logit[inside] = z[inside.nonzero().squeeze(1), targets[inside] - v0]
    log_z = run_max + torch.log(sum_exp)
    return log_z, log_z - x_sum_exp / sum_exp, target_logit, run_max


def install() -> bool:
    """Give TRL the twin when its Triton kernel is missing; True when it was installed."""
    import trl.trainer.utils as trl_utils

    if trl_utils._ChunkedLogProbFunction is not None:
        return False
    trl_utils._ChunkedLogProbFunction = TorchChunkedLogProb
    return True
