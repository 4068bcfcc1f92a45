"""Export safety: an export whose verify generation does not stop at <|im_end|> (the untrained
tiny base with a fresh LoRA adapter) is kept and marked `stopped: false`, but `export_run` raises
`UnverifiedExportError`, `socratic export` exits 1 with one line and nothing is pushed; with
--allow-unverified it exits 0 and pushes. A change of export settings rebuilds the export instead
of reusing it, and only export.* overrides are accepted."""

from __future__ import annotations

import json

import pytest

import trainer.push
from trainer.config import ConfigError, load_config
from trainer.export import UnverifiedExportError, export_run
from tutor.cli import main
from tutor.paths import CONFIGS_DIR


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory, tiny_base):
    """A run dir holding a freshly initialised (B = 0) LoRA adapter on the random tiny base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path_factory.mktemp("untrained") / "run"
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_base), LoraConfig(r=4, target_modules=["q_proj"])
    )
    model.save_pretrained(run / "adapter")
    AutoTokenizer.from_pretrained(tiny_base).save_pretrained(run / "adapter")
    overrides = [
        f"model.name={tiny_base}",
        "export.dtype=float32",
        "export.verify_max_new_tokens=8",
        "export.allow_unverified=false",  # the tiny preset does not gate; real presets do
    ]
    cfg = load_config(CONFIGS_DIR / "tiny-cpu.yaml", overrides, env={})
    (run / "config.yaml").write_text(cfg.to_yaml())
    return run


@pytest.fixture
def pushes(monkeypatch):
    calls = []
    monkeypatch.setattr(
        trainer.push, "push_export", lambda out, repo, private, **kw: calls.append(repo)
    )
    return calls


def test_unverified_export_is_kept_but_not_pushed(untrained_run, tmp_path, pushes, capsys):
    out = tmp_path / "export"
    with pytest.raises(UnverifiedExportError, match="did not stop at <\\|im_end\\|> within 8"):
        export_run(untrained_run, out, push_to_hub="me/tutor")
    report = json.loads((out / "verify.json").read_text())
    assert report["stopped"] is False and report["new_tokens"] == 8
    assert (out / "tutor.json").exists() and pushes == []

    capsys.readouterr()
    args = ["export", "--run", str(untrained_run), "--out", str(out), "--push-to-hub", "me/tutor"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("socratic: error: ") and "--allow-unverified" in err
    assert len(err.splitlines()) == 1 and pushes == []

    assert main([*args, "--allow-unverified"]) == 0
    assert pushes == ["me/tutor"]


def test_changed_export_settings_rebuild_the_export(untrained_run, tmp_path, capsys):
    out = tmp_path / "export"
    export_run(untrained_run, out, allow_unverified=True)
    first = json.loads((out / "tutor.json").read_text())
    export_run(untrained_run, out, allow_unverified=True)
    assert "reusing it" in capsys.readouterr().out

    export_run(untrained_run, out, allow_unverified=True, overrides=["export.served_name=other"])
    assert "reusing it" not in capsys.readouterr().out
    second = json.loads((out / "tutor.json").read_text())
    assert second["served_name_hint"] == "other"
    assert second["adapter_sha256"] == first["adapter_sha256"]
    assert second["export_key"] != first["export_key"]

    with pytest.raises(ConfigError, match="only export"):
        export_run(untrained_run, out, overrides=["model.name=other"])
