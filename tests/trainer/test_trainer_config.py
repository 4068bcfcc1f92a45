"""Training config: both presets load and validate, the GPU preset carries the plan's numbers,
env and CLI overrides apply in order, bad keys and values fail with one line naming the key,
train.resume is checked before anything loads, only the project's own errors become one-line
exits (library errors keep their traceback), a real base trained on the bundled sample alone is
warned about, and the CLI module stays light (no torch at import)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import trainer.train
from trainer.checkpoints import MARKER, check_resume
from trainer.config import ConfigError, TrainError, load_config
from trainer.train import sample_only_warning, train
from tutor.cli import main
from tutor.paths import CONFIGS_DIR

PRESETS = sorted(CONFIGS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_loads_and_shows_its_launch_command(preset):
    cfg = load_config(preset, [], env={})
    assert cfg.lora.r >= 1 and cfg.data.max_seq_len >= 16
    header = preset.read_text().split("\n\n")[0]
    assert f"socratic train --config configs/{preset.name}" in header


def test_gpu_preset_has_the_plan_numbers():
    cfg = load_config(CONFIGS_DIR / "qwen2.5-7b-qlora.yaml", [], env={})
    m, lora, t, d = cfg.model, cfg.lora, cfg.train, cfg.data
    assert m.name == "Qwen/Qwen2.5-7B-Instruct"
    assert (m.load_in_4bit, m.bnb_4bit_quant_type, m.bnb_4bit_use_double_quant) == (
        True,
        "nf4",
        True,
    )
    assert m.compute_dtype == "bfloat16"
    assert (lora.r, lora.alpha, lora.dropout) == (16, 16, 0.0)
    assert set(lora.target_modules) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert (t.learning_rate, t.per_device_batch_size, t.grad_accum, t.epochs) == (2e-4, 2, 8, 3)
    assert (d.max_seq_len, d.eval_split, d.packing) == (2048, 0.05, True)
    assert t.max_grad_norm == 1.0 and t.warmup_ratio > 0 and t.lr_scheduler == "cosine"
    assert t.backend == "auto" and cfg.export.after_train is True


def test_tiny_preset_follows_the_known_recipe():
    cfg = load_config(CONFIGS_DIR / "tiny-cpu.yaml", [], env={})
    assert cfg.model.name == "tiny" and not cfg.model.load_in_4bit
    assert (cfg.lora.r, cfg.lora.alpha, cfg.train.learning_rate) == (16, 32, 1e-2)
    assert cfg.train.epochs == 10


def test_env_then_cli_overrides():
    env = {
        "SOCRATIC_TRAIN__EPOCHS": "2",
        "SOCRATIC_LORA__TARGET_MODULES": "[q_proj, v_proj]",
        "SOCRATIC_HOME": "/elsewhere",  # not a config key: ignored
        "SOCRATIC_SERVER__PORT": "9000",  # another stage's section: ignored
    }
    cfg = load_config(
        CONFIGS_DIR / "tiny-cpu.yaml", ["train.epochs=0.5", "data.packing=false"], env=env
    )
    assert cfg.train.epochs == 0.5  # CLI beats env
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.data.packing is False
    cfg = load_config(None, ["export.push_to_hub=007", "export.out_dir=null"], env={})
    assert cfg.export.push_to_hub == "007" and cfg.export.out_dir is None


@pytest.mark.parametrize(
    ("overrides", "env", "message"),
    [
        (
            ["lora.rank=8"],
            {},
            "unknown key 'lora.rank' (allowed: alpha, dropout, r, target_modules)",
        ),
        (["optim.lr=1"], {}, "unknown section 'optim' (allowed: model, lora, data, train"),
        (["train.backend=tpu"], {}, "train.backend: Input should be 'auto', 'hf' or 'unsloth'"),
        (["train.epochs"], {}, "expected section.key=value"),
        (["data.eval_split=1.5"], {}, "data.eval_split: Input should be less than 1"),
        (["train.eval_steps=-5"], {}, "train.eval_steps: Input should be greater than or equal"),
        (
            [],
            {"SOCRATIC_TRAIN__BATCH": "4"},
            "env SOCRATIC_TRAIN__BATCH 'train.batch': unknown key",
        ),
    ],
)
def test_bad_keys_and_values_name_the_key(overrides, env, message):
    with pytest.raises(ConfigError) as err:
        load_config(CONFIGS_DIR / "tiny-cpu.yaml", overrides, env=env)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_preset_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'train.epochz'"):
        load_config(bad, [], env={})


def test_cli_is_light_and_reports_config_errors():
    code = "import sys, trainer.cli, trainer.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    cmd = [
        sys.executable,
        "-m",
        "trainer.cli",
        "train",
        "--config",
        str(CONFIGS_DIR / "tiny-cpu.yaml"),
    ]
    res = subprocess.run([*cmd, "lora.rr=1"], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "socratic: error: override 'lora.rr': unknown key 'lora.rr' "
        "(allowed: alpha, dropout, r, target_modules)"
    )


def test_resume_is_checked_before_loading(tmp_path, monkeypatch):
    ckpt = tmp_path / "checkpoint-4"
    ckpt.mkdir()
    for value, message in [
        ("bogus", "train.resume: 'bogus' is neither auto, never nor an existing checkpoint"),
        (str(ckpt), f"train.resume: {ckpt} is not a complete checkpoint"),
    ]:
        with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
            check_resume(value)
    (ckpt / MARKER).write_text("ok\n")
    for value in ("auto", "never", str(ckpt)):
        check_resume(value)
    monkeypatch.setattr(trainer.train, "choose_backend", lambda _: pytest.fail("loaded on"))
    cfg = load_config(CONFIGS_DIR / "tiny-cpu.yaml", ["train.resume=bogus"], env={})
    with pytest.raises(ConfigError, match="train.resume"):
        train(cfg)


def test_only_project_errors_become_one_line_exits(monkeypatch, capsys):
    def deep_library_error(cfg):
        raise ValueError("shapes do not match")

    args = ["train", "--config", str(CONFIGS_DIR / "tiny-cpu.yaml")]
    monkeypatch.setattr(trainer.train, "train", deep_library_error)
    with pytest.raises(ValueError, match="shapes do not match"):
        main(args)

    def user_error(cfg):
        raise TrainError("data.train_files: no valid conversations in []")

    monkeypatch.setattr(trainer.train, "train", user_error)
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        "socratic: error: data.train_files: no valid conversations in []"
    )


def test_real_base_on_the_bundled_sample_alone_is_warned_about(tiny_base, tmp_path):
    gpu = load_config(CONFIGS_DIR / "qwen2.5-7b-qlora.yaml", [], env={})
    assert "only on the bundled sample" in sample_only_warning(gpu)
    assert "\n" not in sample_only_warning(gpu)
    hub = load_config(CONFIGS_DIR / "qwen2.5-7b-qlora.yaml", ["data.train_files=[me/x]"], env={})
    assert sample_only_warning(hub) is None
    tiny = load_config(CONFIGS_DIR / "tiny-cpu.yaml", [f"model.name={tiny_base}"], env={})
    assert sample_only_warning(tiny) is None
