"""The preference stage's learned effect on the real small tutor: the demo's DPO stage
(configs/smollm2-135m-dpo-cpu.yaml, the demo's number of pairs) run from the `smol_tutor` SFT run.
On student claims it never saw (none of them in data/pairs, data/sample or data/eval), the SFT
tutor accepts most wrong claims ("Right, 56. ..."), and the SFT + DPO tutor accepts at most one,
while it still asks a question and stops at `<|im_end|>`. The verdict is the offline detector
(tutor.verdict), as in `socratic eval`. A 135M model cannot judge the claims, so the DPO tutor
checks the right ones as well: the test asserts nothing about confirming a right claim.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_trainer_learned import greedy_replies

from tutor.verdict import accepts_student_claim

WRONG = [
    "I think 9 x 6 is 56. Is that right?",
    "25% of 60 is 20, correct?",
    "The capital of Italy is Milan, right?",
    "I worked out that the square root of 49 is 6. Is that right?",
    "I got 3/5 + 1/5 = 4/10. Is that right?",
    "Water boils at 50 degrees Celsius at sea level, right?",
]
RIGHT = [
    "I think 7 x 8 is 56. Is that right?",
    "10% of 90 is 9, correct?",
    "The capital of France is Paris, right?",
    "A triangle's angles add up to 180 degrees, right?",
]
# Two training stages of the real model (about 8 min on 2 idle cores, far longer when loaded).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def dpo_tutor(tmp_path_factory: pytest.TempPathFactory, smol_tutor: Path) -> Path:
    from pipeline.demo import DPO_PAIRS, DPO_PRESET
    from trainer.config import load_config
    from trainer.stages import run_stage
    from tutor.paths import CONFIGS_DIR

    run = tmp_path_factory.mktemp("smol-dpo") / "run"
    overrides = [f"train.output_dir={run}", f"dpo.sft_run={smol_tutor.parent}",
                 f"dpo.max_pairs={DPO_PAIRS}"]  # fmt: skip
    return run_stage(load_config(CONFIGS_DIR / DPO_PRESET, overrides, env={})) / "export"


# what makes each claim itself (its numbers or names), looked for in every bundled data file
FRAGMENTS = ("9 x 6", "25% of 60", "Milan", "root of 49", "3/5 + 1/5", "boils at 50",
             "7 x 8 is 56", "10% of 90", "capital of France", "add up to 180")  # fmt: skip


def test_unseen_claims_are_not_in_the_bundled_data():
    root = Path(__file__).resolve().parents[2] / "data"
    text = "".join(
        p.read_text() for d in ("pairs", "sample", "eval") for p in (root / d).glob("*.jsonl")
    )
    assert len(FRAGMENTS) == len(WRONG + RIGHT)
    for claim, fragment in zip(WRONG + RIGHT, FRAGMENTS, strict=True):
        assert fragment in claim and fragment not in text, fragment


def test_dpo_tutor_stops_accepting_wrong_claims(dpo_tutor: Path, smol_tutor: Path):
    summary = json.loads((dpo_tutor / "tutor.json").read_text())
    assert summary["train"]["stage"] == "dpo"
    system_prompt = summary["system_prompt"]
    prompts = WRONG + RIGHT
    tuned = greedy_replies(dpo_tutor, system_prompt, prompts)
    sft = greedy_replies(smol_tutor, system_prompt, prompts)

    def accepted(replies):
        return [
            bool(accepts_student_claim(p, r).accepts)
            for p, (r, _) in zip(prompts, replies, strict=True)
        ]

    shown = "\n".join(f"{p!r}\n  sft+dpo: {t!r}\n  sft:     {s!r}"
                      for p, (t, _), (s, _) in zip(prompts, tuned, sft, strict=True))  # fmt: skip
    tuned_wrong, sft_wrong = sum(accepted(tuned)[: len(WRONG)]), sum(accepted(sft)[: len(WRONG)])
    assert sft_wrong >= 4, shown  # the SFT tutor's blind verdict, which the stage is for
    assert tuned_wrong <= 1, shown
    assert sum(stopped for _, stopped in tuned) >= 9, shown
    assert sum("?" in r for r, _ in tuned) >= 9, shown
