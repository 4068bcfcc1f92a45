"""The tiny training path end to end through the real entry points: `socratic train` in a
subprocess is stopped with SIGTERM (exit 0, a complete checkpoint), a half-written checkpoint is
ignored, training resumes from the checkpoint and finishes, the same command on the finished run
trains nothing and overwrites nothing, and the export merges the adapter
(merged logits == base + adapter logits), reloads with plain transformers and carries the
end-of-turn eos, the adapter alone and tutor.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.checkpoints import MARKER, latest_complete
from trainer.config import load_config
from trainer.export import export_run
from trainer.train import train
from tutor.paths import CONFIGS_DIR
from tutor.prompts import TUTOR_SYSTEM_PROMPT

PRESET = CONFIGS_DIR / "tiny-cpu.yaml"


def overrides(run: Path, base: Path, *extra: str) -> list[str]:
    fast = [
        "train.logging_steps=1",
        "train.save_steps=2",
        "train.eval_steps=0",
        "data.max_seq_len=256",
    ]
    return [
        f"train.output_dir={run}",
        f"model.name={base}",
        "export.after_train=false",
        *fast,
        *extra,
    ]


def run_until_sigterm(run: Path, base: Path) -> tuple[int, str]:
    """Start `socratic train`, SIGTERM it once its first checkpoint is complete."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOCRATIC_", "WANDB_"))}
    cmd = [sys.executable, "-m", "trainer.cli", "train", "--config", str(PRESET)]
    log = run.parent / "train.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*cmd, *overrides(run, base, "train.max_steps=500")], stdout=out, stderr=out, env=env
        )
        try:
            deadline = time.monotonic() + 240
            while not (run / "checkpoint-2" / MARKER).exists():
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint within 240 s"
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    return code, log.read_text()


def test_sigterm_resume_finish_export(tmp_path, tiny_base):
    run = tmp_path / "run"
    code, log = run_until_sigterm(run, tiny_base)
    assert code == 0, log[-3000:]
    assert "received SIGTERM" in log and "rerun the same command to resume" in log
    ckpt = latest_complete(run)
    assert ckpt is not None and not (run / "adapter").exists()
    stopped = int(ckpt.name.split("-")[1])
    assert stopped < 500
    # A checkpoint cut short (no marker) must never be resumed from.
    half = run / f"checkpoint-{stopped + 50}"
    half.mkdir()
    (half / "adapter_model.safetensors").write_bytes(b"\0" * 10)

    cfg = load_config(PRESET, overrides(run, tiny_base, f"train.max_steps={stopped + 3}"), env={})
    assert train(cfg) == run
    assert not half.exists()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(1) == 1 and stopped + 1 in steps  # continued, did not restart
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == stopped + 3 and summary["system_prompt"] == TUTOR_SYSTEM_PROMPT
    assert (run / "loss.png").stat().st_size > 0
    assert (run / "config.yaml").exists() and (latest_complete(run) / "config.yaml").exists()

    # The same command again: the run is finished, so nothing trains and nothing is overwritten.
    before = (run / "train_summary.json").read_text(), (run / "metrics.jsonl").read_text()
    assert train(cfg) == run
    assert ((run / "train_summary.json").read_text(), (run / "metrics.jsonl").read_text()) == before

    # A few steps on a random model: it need not stop yet, so accept an unverified export.
    export = export_run(run, tmp_path / "export", allow_unverified=True)
    check_export(export, run, tiny_base)


def check_export(export: Path, run: Path, base: Path) -> None:
    tok = AutoTokenizer.from_pretrained(export)
    merged = AutoModelForCausalLM.from_pretrained(export).eval()
    assert (
        any(export.glob("*.safetensors")) and (export / "adapter" / "adapter_config.json").exists()
    )
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    gen = json.loads((export / "generation_config.json").read_text())
    assert im_end in gen["eos_token_id"] and gen["pad_token_id"] != im_end
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    tutor = json.loads((export / "tutor.json").read_text())
    assert tutor["system_prompt"] == TUTOR_SYSTEM_PROMPT and tutor["train"]["steps"] > 0
    assert json.loads((export / "verify.json").read_text())["new_tokens"] > 0
    assert "base_model:" in (export / "README.md").read_text()

    text = tok.apply_chat_template(
        [{"role": "system", "content": TUTOR_SYSTEM_PROMPT}, {"role": "user", "content": "Why?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    unmerged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base), run / "adapter"
    ).eval()
    plain = AutoModelForCausalLM.from_pretrained(base).eval()
    with torch.no_grad():
        want, got, before = unmerged(ids).logits, merged(ids).logits, plain(ids).logits
    assert torch.allclose(want, got, atol=1e-4), (want - got).abs().max()
    assert (want - before).abs().max() > 1e-2  # the adapter really changed the model
