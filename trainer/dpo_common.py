"""What both DPO backends share (trainer.dpo's hf path and trainer.dpo_unsloth): the SFT adapter's
weights copied into the DPO model, and the run's `train_summary.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainer.config import TrainError


def load_adapter_weights(model: Any, adapter: Path) -> None:
    """Copy the SFT adapter's LoRA weights into `model`'s fresh adapter of the same shape."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(str(adapter / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, state)
    if result.unexpected_keys:
        raise TrainError(
            f"{adapter}: {len(result.unexpected_keys)} adapter tensors do not fit the model "
            f"(first: {result.unexpected_keys[0]}); the SFT run's lora section must match"
        )


def write_summary(cfg, state, data, run_dir, backend, sft_summary, seconds, peak_gb) -> dict:
    history = state.log_history
    train_logs = [h for h in history if "loss" in h]
    evals = [h for h in history if "eval_loss" in h]
    last = train_logs[-1] if train_logs else {}
    speed = [h for h in history if "train_tokens_per_second" in h]
    stats = data["stats"]
    summary = {
        "stage": "dpo",
        "backend": backend,
        "base_model": cfg.model.name,
        "system_prompt": data["system_prompt"],
        "dpo": cfg.dpo.model_dump(),
        "data": {
            "files": data["files"],
            "pairs": {"train": len(data["train"]), "eval": len(data["eval"])},
            "tokens": stats.tokens,
            "reply_tokens": stats.reply_tokens,
            "over_max_seq_len": stats.too_long,
        },  # fmt: skip
        "steps": state.global_step,
        "epochs": state.epoch,
        "first_loss": train_logs[0]["loss"] if train_logs else None,
        "final_loss": last.get("loss"),
        "final": {k: v for k, v in last.items() if k.startswith(("rewards/", "logps/", "sft_"))},
        "eval_loss": evals[-1]["eval_loss"] if evals else None,
        "eval": {k: v for k, v in (evals[-1] if evals else {}).items() if "rewards/" in k},
        "wall_seconds": round(seconds, 1),
        "tokens_per_second": speed[-1]["train_tokens_per_second"] if speed else None,
        "peak_mem_gb": round(peak_gb, 3),
        "sft": {k: v for k, v in sft_summary.items() if k != "system_prompt"},
    }
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"adapter saved to {run_dir / 'adapter'}; final loss {summary['final_loss']}, "
          f"{json.dumps(summary['final'])}, {summary['wall_seconds']} s")  # fmt: skip
    return summary
