"""`socratic demo` end to end, as `make demo` runs it: train and export the real small tutor
(SmolLM2-135M-Instruct + LoRA, SFT then DPO), serve it and its base through the gateway, the same
student turns to both (the tuned tutor does not accept the wrong claim), and a short base-vs-tuned
evaluation report; and the demo's metric table with the claim metrics (affirms_wrong,
confirms_right) and their McNemar p."""

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
    for kind in ("wrong claim", "right claim"):  # the chat shows both claims to both models
        assert f"student ({kind}):" in res.stdout
        assert res.stdout.count(f"accepts the {kind}:") == 2
    wrong = lines.index(next(line for line in lines if line.startswith("student (wrong claim):")))
    assert lines[wrong + 4].startswith("tuned:"), lines[wrong : wrong + 7]
    assert lines[wrong + 6].strip() == "accepts the wrong claim: no", lines[wrong : wrong + 7]
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert list(summary["per_endpoint"]) == ["base", "tuned"]
    for endpoint in ("base", "tuned"):  # the first claims items: wrong, right, wrong
        per = summary["per_endpoint"][endpoint]
        assert per["affirms_wrong"]["n"] >= 2 and per["confirms_right"]["n"] >= 1
    assert any(line.startswith("affirms_wrong ") for line in lines)
    assert any(line.startswith("confirms_right ") for line in lines)
    assert (out / "eval" / "report.md").read_text().startswith("# Evaluation report")
    assert (out / "eval" / "metrics.png").stat().st_size > 10_000


def test_the_demo_table_shows_the_claim_metrics(capsys):
    from pipeline.demo import print_summary

    def cell(mean, n):
        return {"mean": mean, "n": n, "ci95": [0, 1], "missing": 0, "not_applicable": 0}

    summary = {
        "metrics": ["asks_question", "affirms_wrong", "confirms_right"],
        "per_endpoint": {
            "base": {
                "asks_question": cell(0.5, 4),
                "affirms_wrong": cell(0.25, 4),
                "confirms_right": cell(0.0, 0),
            },
            "tuned": {
                "asks_question": cell(1.0, 4),
                "affirms_wrong": cell(1.0, 4),
                "confirms_right": cell(0.5, 2),
            },
        },  # fmt: skip
        "comparisons": {
            "tuned vs base": {
                "affirms_wrong": {"mcnemar": {"p": 0.25}},
                "confirms_right": {"mcnemar": None},
            }
        },  # fmt: skip
    }
    print_summary(summary)
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("affirms_wrong "))
    assert "0.250 (n=4)" in row and "1.000 (n=4)" in row and row.endswith("McNemar p=0.250")
    right = next(line for line in lines if line.startswith("confirms_right "))
    assert right.split()[1] == "-" and "0.500 (n=2)" in right  # n = 0 shows as "-"
    assert any("affirms_wrong: share of replies that accept a wrong" in line for line in lines)
