"""Trainer callbacks: metrics.jsonl + loss curve, checkpoint completion markers, stop on SIGTERM.

Attached by `trainer.train.train`; each is small and stateless apart from the files it writes.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from trainer.checkpoints import mark_complete


def peak_memory_gb() -> float:
    """Peak GPU memory allocated (CUDA) or peak resident memory of this process (CPU), in GiB."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB


class MetricsLogger(TrainerCallback):
    """Adds peak memory to every log, appends it to `metrics.jsonl`, draws `loss.png` at the end.

    Put first in the callback list so W&B and the console see the added fields too.
    """

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = run_dir / "metrics.jsonl"
        self.png = run_dir / "loss.png"
        self.enabled = enabled

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None:
            return
        logs["peak_mem_gb"] = round(peak_memory_gb(), 3)
        if self.enabled:
            row = {"step": state.global_step, "epoch": state.epoch, **logs}
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    def on_save(self, args, state, control, **kwargs):
        if self.enabled:
            plot_losses(self.path, self.png)

    def on_train_end(self, args, state, control, **kwargs):
        if self.enabled:
            plot_losses(self.path, self.png)


class CheckpointMarker(TrainerCallback):
    """After the Trainer saved `checkpoint-<step>`, store the config and mark it complete."""

    def __init__(self, run_dir: Path, config_yaml: str):
        self.run_dir = run_dir
        self.config_yaml = config_yaml

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            mark_complete(self.run_dir / f"checkpoint-{state.global_step}", self.config_yaml)


class StopOnSignal(TrainerCallback):
    """On SIGTERM/SIGINT: finish the current step, save a checkpoint, stop training cleanly."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum
        print(
            f"\nreceived {signal.Signals(signum).name}: saving a checkpoint after this step",
            file=sys.stderr,
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.signal is not None:
            control.should_save = True
            control.should_training_stop = True
        return control


def plot_losses(metrics_path: Path, png_path: Path) -> None:
    """Training and eval loss against optimizer step, as a PNG."""
    if not metrics_path.exists():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style in (("loss", "-"), ("eval_loss", "o--")):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts, strict=True), style, label=key)
    ax.set_xlabel("optimizer step")
    dpo = any("rewards/margins" in r for r in rows)  # the preference stage (trainer.dpo)
    ax.set_ylabel("preference loss (+ sft_weight x NLL)" if dpo else "cross-entropy (nats/token)")
    ax.set_title(metrics_path.parent.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = png_path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(png_path)
