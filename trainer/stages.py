"""One entry for every training stage: `run_stage(cfg)` runs `train.stage` (sft or dpo).

    from trainer.stages import run_stage
    run_dir = run_stage(load_config("configs/smollm2-135m-dpo-cpu.yaml"))

Used by `socratic train`, the demo and the pod entry point, so each runs either stage the same way.
"""

from __future__ import annotations

from pathlib import Path

from trainer.config import Config


def run_stage(cfg: Config) -> Path:
    """Train per `cfg` (sft: trainer.train, dpo: trainer.dpo); returns the run dir."""
    if cfg.train.stage == "dpo":
        from trainer.dpo import train_dpo

        return train_dpo(cfg)
    from trainer.train import train

    return train(cfg)
