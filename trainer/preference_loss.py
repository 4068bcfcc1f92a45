"""Preference losses on per-sequence log-probabilities: pure functions, no model, no Trainer.

    from trainer.preference_loss import preference_loss
    loss, stats = preference_loss(policy, reference, lengths, kind="sigmoid", beta=0.1)

`policy` and `reference` are `[B, 2]` tensors of summed log-probabilities of the reply tokens
(column 0 the chosen reply, column 1 the rejected one), `lengths` `[B, 2]` their token counts.
The reference column is constant (precomputed once from the frozen SFT model).

- sigmoid (DPO, Rafailov et al. 2023): `-log sigmoid(beta * ((pc - rc) - (pr - rr)))`.
- ipo (Azar et al. 2023): `((pc - rc) - (pr - rr) - 1 / (2 beta))^2` on log-probabilities averaged
  over each reply's tokens (as TRL's `loss_type="ipo"`): the target margin is finite, so it does
  not push the rejected reply's likelihood toward zero.
- `sft_weight` adds the mean NLL per token of the chosen reply (`sft_nll`): without it, DPO on a
  135M model lowered the chosen reply's likelihood too and its replies degenerated into loops.

The implicit rewards logged are `beta * (policy - reference)` per side, as in TRL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("sigmoid", "ipo")


def preference_loss(
    policy: torch.Tensor,
    reference: torch.Tensor,
    lengths: torch.Tensor,
    kind: str = "sigmoid",
    beta: float = 0.1,
    sft_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean loss over the batch and detached statistics (rewards, accuracy, log-probs)."""
    if kind not in LOSSES:
        raise ValueError(f"dpo.loss: unknown {kind!r} (allowed: {', '.join(LOSSES)})")
    lengths = lengths.to(policy.dtype).clamp(min=1)
    reference = reference.to(policy)
    if kind == "ipo":
        ratios = policy / lengths - reference / lengths
        margin = ratios[:, 0] - ratios[:, 1]
        losses = (margin - 1 / (2 * beta)) ** 2
    else:
        ratios = policy - reference
        margin = ratios[:, 0] - ratios[:, 1]
        losses = -F.logsigmoid(beta * margin)
    nll = -(policy[:, 0] / lengths[:, 0])  # mean NLL per token of each chosen reply
    loss = losses.mean() + (sft_weight * nll.mean() if sft_weight else 0.0)
    rewards = beta * (policy - reference).detach()
    stats = {
        "rewards/chosen": rewards[:, 0].mean().item(),
        "rewards/rejected": rewards[:, 1].mean().item(),
        "rewards/margins": (rewards[:, 0] - rewards[:, 1]).mean().item(),
        "rewards/accuracies": (rewards[:, 0] > rewards[:, 1]).float().mean().item(),
        "logps/chosen": policy[:, 0].detach().mean().item(),
        "logps/rejected": policy[:, 1].detach().mean().item(),
        "sft_nll": nll.detach().mean().item(),
        "preference_loss": losses.detach().mean().item(),
    }
    return loss, stats
