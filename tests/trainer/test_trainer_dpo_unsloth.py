"""The preference stage's unsloth path, on CPU: `PatchDPOTrainer()` runs before TRL's DPOTrainer
trains the adapter loaded from the SFT run, against TRL's frozen copy of it ("ref"), with the
project's settings (beta, loss list with the weighted sft term, max length, precomputed reference,
pad distinct from eos); the saved adapter holds the trained adapter only, and train_summary.json
records both stages. A stand-in `unsloth` module returns the real tiny model (the real one needs a
GPU); TRL's fused LM head runs through the plain-torch twin in bench/trl_cpu.py.
"""

from __future__ import annotations

import json
import sys
import types

import pytest
from pairs_fixture import arithmetic_pairs, write_pairs
from safetensors.torch import load_file

from trainer.config import load_config
from trainer.dpo import resolve_sft, stage_config
from tutor.paths import CONFIGS_DIR

PRESET = CONFIGS_DIR / "tiny-cpu.yaml"


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, tiny_base):
    """A one-step SFT run on the tiny base (before the stand-in unsloth module exists)."""
    from trainer.stages import run_stage

    run = tmp_path_factory.mktemp("sft") / "run"
    overrides = [f"train.output_dir={run}", f"model.name={tiny_base}", "export.after_train=false",
                 "train.max_steps=1", "train.eval_steps=0", "data.max_seq_len=256"]  # fmt: skip
    return run_stage(load_config(PRESET, overrides, env={}))


@pytest.fixture
def fake_unsloth(monkeypatch, tiny_base):
    calls: list[str] = []

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(**kwargs):
            from transformers import AutoModelForCausalLM

            calls.append("from_pretrained")
            return AutoModelForCausalLM.from_pretrained(kwargs["model_name"]), None

        @staticmethod
        def get_peft_model(model, **kwargs):
            from peft import LoraConfig, get_peft_model

            calls.append("get_peft_model")
            lora = LoraConfig(r=kwargs["r"], lora_alpha=kwargs["lora_alpha"],
                              target_modules=kwargs["target_modules"])  # fmt: skip
            return get_peft_model(model, lora)

    def patch_dpo_trainer():
        calls.append("PatchDPOTrainer")

    unsloth = types.ModuleType("unsloth")
    unsloth.FastLanguageModel = FastLanguageModel
    unsloth.PatchDPOTrainer = patch_dpo_trainer
    monkeypatch.setitem(sys.modules, "unsloth", unsloth)
    return calls


def test_unsloth_path_trains_the_sft_adapter_with_trl(tmp_path, sft_run, fake_unsloth, monkeypatch):
    import trl

    from bench.trl_cpu import install
    from trainer.dpo_unsloth import train_dpo_unsloth

    install()
    pairs = write_pairs(tmp_path / "pairs.jsonl", arithmetic_pairs(8, seed=2))
    run = tmp_path / "dpo"
    cfg = load_config(PRESET, [f"train.output_dir={run}", "train.stage=dpo", f"dpo.sft_run={sft_run}",
                               f"data.train_files=[{pairs}]", "export.after_train=false",
                               "train.max_steps=2", "train.grad_accum=1", "train.eval_steps=0",
                               "train.per_device_batch_size=2", "train.logging_steps=1",
                               "dpo.sft_weight=0.5", "dpo.beta=0.2", "train.learning_rate=1e-2"],
                      env={})  # fmt: skip
    adapter, sft_cfg, summary = resolve_sft(cfg)
    cfg = stage_config(cfg, sft_cfg)
    seen = {}
    real = trl.DPOTrainer.__init__

    def spy(self, *args, **kwargs):
        seen["patched_first"] = fake_unsloth[-1] == "PatchDPOTrainer"
        seen["args"], seen["ref_model"] = kwargs["args"], kwargs["ref_model"]
        seen["pad"] = kwargs["processing_class"].pad_token
        real(self, *args, **kwargs)
        seen["adapters"] = sorted(self.model.peft_config)

    monkeypatch.setattr(trl.DPOTrainer, "__init__", spy)
    run.mkdir()
    assert train_dpo_unsloth(cfg, run, adapter, summary, cfg.to_yaml()) == run

    args = seen["args"]
    assert (
        seen["patched_first"]
        and seen["ref_model"] is None
        and seen["adapters"] == ["default", "ref"]
    )
    assert (args.beta, args.loss_type, args.loss_weights) == (0.2, ["sigmoid", "sft"], [1.0, 0.5])
    assert args.precompute_ref_log_probs and args.max_length == cfg.data.max_seq_len
    assert seen["pad"] == "<|endoftext|>"  # distinct from eos <|im_end|>
    assert not (run / "adapter" / "ref").exists()
    after = load_file(run / "adapter" / "adapter_model.safetensors")
    before = load_file(adapter / "adapter_model.safetensors")
    assert after.keys() == before.keys()
    assert any((after[k] - before[k]).abs().max() > 1e-5 for k in after)
    saved = json.loads((run / "train_summary.json").read_text())
    assert saved["stage"] == "dpo" and saved["backend"] == "unsloth" and saved["steps"] == 2
    assert saved["sft"]["steps"] == 1
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/margins" in r for r in rows)
    assert (run / "checkpoint-2" / "COMPLETE").is_file()
