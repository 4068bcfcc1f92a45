"""What the Unsloth backend changes around training, on CPU: the export after training runs in a
child process when the backend is unsloth (shown against a class-level `Qwen2ForCausalLM.forward`
patch like Unsloth's, which breaks `generate` in-process), its failures keep their exit code and a
retry command; the saved adapter names the configured base and revision, not a mirror; and the
unsloth backend's calls (exact model name, revision, packing mark, refused bnb settings) through a
stand-in `unsloth` module, since the real one needs a GPU.
"""

from __future__ import annotations

import json
import sys
import types

import pytest

from trainer.config import ConfigError, load_config
from trainer.export import ExportProcessError
from trainer.train import export, record_base
from tutor.paths import CONFIGS_DIR

MIRROR = "unsloth/Qwen2.5-7B-Instruct-unsloth-bnb-4bit"


def fresh_run(run, tiny_base, allow_unverified: bool):
    """A run dir with a fresh LoRA adapter on the tiny base (no training needed to export it)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_base), LoraConfig(r=4, target_modules=["q_proj"])
    )
    model.save_pretrained(run / "adapter")
    AutoTokenizer.from_pretrained(tiny_base).save_pretrained(run / "adapter")
    overrides = [f"model.name={tiny_base}", f"train.output_dir={run}", "export.dtype=float32",
                 "export.verify_max_new_tokens=8", f"export.allow_unverified={allow_unverified}"]  # fmt: skip
    cfg = load_config(CONFIGS_DIR / "tiny-cpu.yaml", overrides, env={})
    (run / "config.yaml").write_text(cfg.to_yaml())
    return cfg


@pytest.fixture
def unsloth_like_patch(monkeypatch):
    """Unsloth replaces Qwen2ForCausalLM.forward for the whole process; its decode path reads
    `self.max_seq_length`, which only models Unsloth loaded itself have."""
    from transformers.models.qwen2.modeling_qwen2 import Qwen2ForCausalLM

    def forward(self, *args, **kwargs):
        return self.max_seq_length

    monkeypatch.setattr(Qwen2ForCausalLM, "forward", forward)


def test_unsloth_runs_export_in_a_child_process(tmp_path, tiny_base, unsloth_like_patch, capfd):
    cfg = fresh_run(tmp_path / "run", tiny_base, allow_unverified=True)
    with pytest.raises(AttributeError, match="max_seq_length"):
        export(cfg, tmp_path / "run", "hf")  # in this process: the verify generate breaks

    out = export(cfg, tmp_path / "run", "unsloth")
    assert out == tmp_path / "run" / "export"
    report = json.loads((out / "verify.json").read_text())
    assert report["new_tokens"] >= 1 and (out / "model.safetensors").is_file()
    assert "in a child process" in capfd.readouterr().out


def test_child_export_failure_keeps_its_exit_code(tmp_path, tiny_base, capfd):
    cfg = fresh_run(tmp_path / "run", tiny_base, allow_unverified=False)
    cfg.export.push_to_hub, cfg.export.private = "me/tutor", True
    with pytest.raises(ExportProcessError) as err:
        export(cfg, tmp_path / "run", "unsloth")
    assert err.value.code == 1  # unverified: the export is kept, nothing pushed
    assert "--push-to-hub me/tutor --private" in str(err.value)
    assert "did not stop at <|im_end|>" in capfd.readouterr().err
    assert (tmp_path / "run" / "export" / "verify.json").is_file()


def test_saved_adapter_names_the_configured_base(tmp_path, tiny_base):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_base), LoraConfig(r=4, target_modules=["q_proj"])
    )
    model.peft_config["default"].base_model_name_or_path = MIRROR  # what Unsloth records
    record_base(model, "Qwen/Qwen2.5-7B-Instruct", "a1b2c3")
    model.peft_config["default"].save_pretrained(tmp_path / "adapter")  # adapter_config.json
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == "Qwen/Qwen2.5-7B-Instruct"
    assert saved["revision"] == "a1b2c3"


@pytest.fixture
def fake_unsloth(monkeypatch, tiny_base):
    """A stand-in `unsloth` package that records its calls and returns the real tiny model."""
    calls = {}

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(**kwargs):
            from transformers import AutoModelForCausalLM, AutoTokenizer

            calls["from_pretrained"] = kwargs
            return AutoModelForCausalLM.from_pretrained(tiny_base), AutoTokenizer.from_pretrained(
                tiny_base
            )

        @staticmethod
        def get_peft_model(model, **kwargs):
            from peft import LoraConfig, get_peft_model

            calls["get_peft_model"] = kwargs
            return get_peft_model(model, LoraConfig(r=kwargs["r"], target_modules=["q_proj"]))

    def mark_allow_overlength(model):
        calls["mark_allow_overlength"] = True

    unsloth = types.ModuleType("unsloth")
    unsloth.FastLanguageModel = FastLanguageModel
    utils, packing = types.ModuleType("unsloth.utils"), types.ModuleType("unsloth.utils.packing")
    packing.mark_allow_overlength = mark_allow_overlength
    for name, module in (("unsloth", unsloth), ("unsloth.utils", utils),
                         ("unsloth.utils.packing", packing)):  # fmt: skip
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def qlora_config(tiny_base, *overrides):
    base = [f"model.name={tiny_base}", "model.load_in_4bit=true", "model.revision=a1b2c3"]
    return load_config(CONFIGS_DIR / "tiny-cpu.yaml", [*base, *overrides], env={})


def test_unsloth_backend_loads_the_configured_repo_as_named(fake_unsloth, tiny_base):
    from trainer.backends.unsloth_backend import load_model

    cfg = qlora_config(tiny_base, "data.packing=true", "data.max_seq_len=512")
    model = load_model(cfg, cfg.model.name)
    loaded = fake_unsloth["from_pretrained"]
    assert loaded["model_name"] == str(tiny_base) and loaded["use_exact_model_name"] is True
    assert loaded["revision"] == "a1b2c3" and loaded["load_in_4bit"] is True
    assert loaded["max_seq_length"] == 512
    assert fake_unsloth["get_peft_model"]["r"] == cfg.lora.r
    assert fake_unsloth.get("mark_allow_overlength") and hasattr(model, "peft_config")


@pytest.mark.parametrize(
    "setting", ["model.bnb_4bit_quant_type=fp4", "model.bnb_4bit_use_double_quant=false"]
)
def test_unsloth_backend_refuses_bnb_settings_it_would_ignore(fake_unsloth, tiny_base, setting):
    from trainer.backends.unsloth_backend import load_model

    cfg = qlora_config(tiny_base, setting)
    with pytest.raises(ConfigError, match="always loads 4-bit as nf4 with double quantisation"):
        load_model(cfg, cfg.model.name)
    assert "from_pretrained" not in fake_unsloth
