"""Backend choice, and (CUDA only) a few QLoRA steps of the tiny model on the `auto` backend
with 4-bit weights, packing and gradient checkpointing, then a merged export."""

from __future__ import annotations

import json

import pytest
import torch

from trainer.backends import choose_backend
from trainer.config import load_config
from trainer.export import export_run
from trainer.train import train
from tutor.paths import CONFIGS_DIR


def test_auto_backend_explains_its_choice():
    name, why = choose_backend("auto")
    assert name in ("hf", "unsloth") and why.startswith("auto: ")
    if not torch.cuda.is_available():
        assert (name, why) == ("hf", "auto: no CUDA device (unsloth needs a GPU)")
        with pytest.raises(ValueError, match="needs a CUDA GPU"):
            choose_backend("unsloth")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_qlora_steps_on_gpu(tmp_path, tiny_base):
    overrides = [
        f"train.output_dir={tmp_path / 'run'}",
        f"model.name={tiny_base}",
        "model.load_in_4bit=true",
        "model.gradient_checkpointing=true",
        "model.compute_dtype=auto",
        "train.backend=auto",
        "train.max_steps=3",
        "export.after_train=true",
        "export.dtype=float32",
        "export.allow_unverified=true",  # 3 steps do not teach it to stop
    ]
    run = train(load_config(CONFIGS_DIR / "tiny-cpu.yaml", overrides, env={}))
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 3 and summary["peak_mem_gb"] > 0
    assert (export_run(run) / "tutor.json").exists()
