"""`socratic demo` end to end, as `make demo` runs it: train and export the real small tutor
(SmolLM2-135M-Instruct + LoRA), serve it and its base through the gateway, the same student turn to
both, and a short base-vs-tuned evaluation report."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "tutor.cli", "demo", "--out", str(out), "--eval-items", "3"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=3000)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for title in ("1/4 train + export", "2/4 serve", "3/4 chat", "4/4 eval"):
        assert f"--- {title}:" in res.stdout
    lines = res.stdout.splitlines()
    tuned = next(i for i, line in enumerate(lines) if line.startswith("tuned:"))
    assert "finish_reason: stop" in lines[tuned + 1]  # the tuned tutor ended its turn at <|im_end|>
    assert json.loads((out / "train" / "export" / "tutor.json").read_text())["system_prompt"]
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert list(summary["per_endpoint"]) == ["base", "tuned"]
    assert (out / "eval" / "report.md").read_text().startswith("# Evaluation report")
    assert (out / "eval" / "metrics.png").stat().st_size > 10_000
