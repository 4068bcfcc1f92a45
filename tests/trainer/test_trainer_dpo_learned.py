"""The preference stage on the real small tutor (SmolLM2-135M-Instruct): the `smol_tutor` SFT run,
then configs/smollm2-135m-dpo-cpu.yaml on the bundled pairs (data/pairs/). On pairs it never
trained on (the stage's held-out split and templated arithmetic claims of another form), the
log-probability margin chosen-minus-rejected rises over the SFT model's on average and on most
pairs; the export still stops at `<|im_end|>` and its greedy replies to unseen claims still end
their turn. Deterministic: fixed seeds, greedy decoding, thresholds measured on two runs with room.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pairs_fixture import arithmetic_pairs
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.config import load_config
from trainer.data import split_eval
from trainer.dpo_data import PairCollator, encode_pairs, sequence_logps
from trainer.export import export_run
from trainer.stages import run_stage
from tutor.pairs import load_pairs
from tutor.paths import CONFIGS_DIR, REPO_ROOT

# Unseen claims (in no bundled file): five wrong, then five right.
CLAIMS = [
    "I think 9 x 6 is 56, right?",
    "So 25% of 60 is 20?",
    "Italy's capital is Milan, yes?",
    "Water boils at 50 degrees Celsius at sea level, right?",
    "The square root of 49 is 6, right?",
    "A triangle's angles add up to 180 degrees, right?",
    "I got x = 4 for 2x + 3 = 11. Is that right?",
    "Photosynthesis makes oxygen, correct?",
    "7 is a prime number, isn't it?",
    "Ice is lighter than liquid water, so it floats, right?",
]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def held_out_pairs(cfg) -> list[dict]:
    """The DPO stage's own held-out split of the bundled pairs, plus unseen templated claims."""
    pairs = load_pairs(REPO_ROOT / cfg.data.train_files[0])
    _, held = split_eval(pairs, cfg.data.eval_split, cfg.train.seed)
    return held + arithmetic_pairs(16, seed=11)


def margins(model_dir: Path, pairs: list[dict], system_prompt: str) -> torch.Tensor:
    """log p(chosen) - log p(rejected) per pair under the merged model at `model_dir`."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    examples, _ = encode_pairs(tok, pairs, system_prompt, max_len=1024)
    out = []
    with torch.no_grad():
        for i in range(0, len(examples), 8):
            logps, _ = sequence_logps(model, PairCollator(tok.pad_token_id)(examples[i : i + 8]), 1024)
            n = logps.shape[0] // 2
            out.append(logps[:n] - logps[n:])
    return torch.cat(out)


def greedy(model_dir: Path, system_prompt: str, prompts: list[str], limit: int = 96) -> list[tuple[str, bool]]:
    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    texts = [tok.apply_chat_template([{"role": "system", "content": system_prompt},
                                      {"role": "user", "content": p}],
                                     tokenize=False, add_generation_prompt=True) for p in prompts]  # fmt: skip
    inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=limit, do_sample=False, use_cache=True,
                             eos_token_id=im_end, pad_token_id=tok.pad_token_id)  # fmt: skip
    replies = []
    for row in out[:, inputs["input_ids"].shape[1] :].tolist():
        stopped = im_end in row
        row = row[: row.index(im_end)] if stopped else row
        replies.append((tok.decode(row, skip_special_tokens=True).strip(), stopped))
    return replies


@pytest.fixture(scope="module")
def smol_dpo(smol_tutor, tmp_path_factory):
    """configs/smollm2-135m-dpo-cpu.yaml from the `smol_tutor` SFT run, exported."""
    run = tmp_path_factory.mktemp("smol-dpo") / "run"
    overrides = [f"train.output_dir={run}", f"dpo.sft_run={smol_tutor.parent}",
                 "export.after_train=false"]  # fmt: skip
    cfg = load_config(CONFIGS_DIR / "smollm2-135m-dpo-cpu.yaml", overrides, env={})
    return export_run(run_stage(cfg)), cfg


def test_dpo_raises_the_margin_on_held_out_pairs_and_still_stops(smol_tutor, smol_dpo):
    export, cfg = smol_dpo
    system_prompt = json.loads((export / "tutor.json").read_text())["system_prompt"]
    pairs = held_out_pairs(cfg)
    before, after = margins(smol_tutor, pairs, system_prompt), margins(export, pairs, system_prompt)
    gain = after - before
    shown = f"mean gain {gain.mean():.2f}, rose on {(gain > 0).sum()}/{len(gain)}: {gain.tolist()}"
    assert gain.mean() > MIN_MEAN_GAIN, shown
    assert (gain > 0).float().mean() >= MIN_SHARE_ROSE, shown
    assert json.loads((export / "verify.json").read_text())["stopped"]
    replies = greedy(export, system_prompt, CLAIMS)
    assert sum(stopped for _, stopped in replies) >= 9, replies


MIN_MEAN_GAIN = 1.0  # nats, summed over the reply
MIN_SHARE_ROSE = 0.7
