"""`PreferenceTrainer`: `transformers.Trainer` with the preference loss of trainer.preference_loss
on the reply log-probs of trainer.dpo_data (imported after the backend loaded the model: Unsloth
must patch transformers first).
"""

from __future__ import annotations

from transformers import Trainer

from trainer.config import Config
from trainer.dpo_data import sequence_logps


class PreferenceTrainer(Trainer):
    """`Trainer` whose loss is the preference loss of each batch of pairs; it logs the mean of
    the loss's statistics (rewards, accuracy, log-probs) over each logging window."""

    def setup_preference(self, cfg: Config, chunk: int) -> None:
        self.dpo = cfg.dpo
        self.chunk = chunk
        self.window: dict[str, list[float]] = {}
        self.model_accepts_loss_kwargs = False  # the loss is a batch mean: Trainer scales it

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch

        from trainer.preference_loss import preference_loss

        logps, counts = sequence_logps(model, inputs, self.chunk)
        n = logps.shape[0] // 2
        policy = torch.stack([logps[:n], logps[n:]], 1)
        lengths = torch.stack([counts[:n], counts[n:]], 1)
        loss, stats = preference_loss(policy, inputs["reference"], lengths, self.dpo.loss,
                                      self.dpo.beta, self.dpo.sft_weight)  # fmt: skip
        prefix = "" if model.training else "eval_"
        for k, v in stats.items():
            self.window.setdefault(prefix + k, []).append(v)
        return (loss, {"loss": loss}) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        evaluating = any(k.startswith("eval_") for k in logs)
        for k in [k for k in self.window if k.startswith("eval_") == evaluating]:
            values = self.window.pop(k)
            logs[k] = round(sum(values) / len(values), 4)
        super().log(logs, start_time)
