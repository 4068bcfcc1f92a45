"""The preference stage on the tiny random Qwen2 model: the project's DPO, IPO and SFT-weighted
losses equal a computation written here from full logits and the chat template's text (not the
trainer's masks or chunked head); only the last reply's content and `<|im_end|>` are scored; a
DPO run resumed from its checkpoint ends in the same adapter as the uninterrupted run, without
rescoring the reference; the export after DPO merges the adapter, keeps the end-of-turn eos and
records both stages in tutor.json; bad pair rows and a missing SFT run are one-line errors.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from pairs_fixture import arithmetic_pairs, write_pairs
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.checkpoints import latest_complete
from trainer.config import ConfigError, TrainError, load_config
from trainer.dpo_data import PairCollator, encode_pairs, read_pairs, sequence_logps
from trainer.export import export_run
from trainer.preference_loss import preference_loss
from trainer.stages import run_stage
from tutor.paths import CONFIGS_DIR
from tutor.prompts import TUTOR_SYSTEM_PROMPT

PRESET = CONFIGS_DIR / "tiny-cpu.yaml"


def random_lora(base: Path):
    """The tiny base with a LoRA adapter whose B matrices are not zero (it changes the logits)."""
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=4, target_modules=["q_proj"])
    )
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def reply_logp_by_hand(model, tok, prompt: list[dict], reply: str) -> tuple[float, int]:
    """Sum of log p(reply tokens + <|im_end|>) from the full logits of the rendered text."""
    head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    ids_head = tok(head, add_special_tokens=False)["input_ids"]
    ids_reply = tok(reply, add_special_tokens=False)["input_ids"] + [
        tok.convert_tokens_to_ids("<|im_end|>")
    ]
    ids = torch.tensor([ids_head + ids_reply])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    total = sum(logp[len(ids_head) + j - 1, t].item() for j, t in enumerate(ids_reply))
    return total, len(ids_reply)


def test_losses_equal_a_computation_from_full_logits(tiny_base):
    tok = AutoTokenizer.from_pretrained(tiny_base)
    tok.pad_token = "<|endoftext|>"
    model = random_lora(tiny_base)
    pairs = arithmetic_pairs(4, seed=3)
    examples, stats = encode_pairs(tok, pairs, TUTOR_SYSTEM_PROMPT, max_len=512)
    assert stats.pairs == 4 and stats.too_long == 0
    batch = PairCollator(tok.pad_token_id)(examples)
    with torch.no_grad():
        logps, counts = sequence_logps(model, batch, chunk=7)
    policy = torch.stack([logps[:4], logps[4:]], 1)
    lengths = torch.stack([counts[:4], counts[4:]], 1)
    by_hand = []
    for pair in pairs:
        prompt = [{"role": "system", "content": TUTOR_SYSTEM_PROMPT}, *pair["prompt"]]
        by_hand.append([reply_logp_by_hand(model, tok, prompt, pair[s][0]["content"])
                        for s in ("chosen", "rejected")])  # fmt: skip
    want = torch.tensor([[lp for lp, _ in row] for row in by_hand], dtype=torch.float64)
    want_n = torch.tensor([[n for _, n in row] for row in by_hand])
    assert torch.equal(lengths, want_n)
    assert torch.allclose(policy.double(), want, atol=1e-3), (policy - want).abs().max()

    reference = want + torch.tensor([[0.3, -0.2], [-1.0, 0.5], [0.0, 0.0], [2.0, 1.0]]).double()
    beta = 0.1
    for kind, sft_weight in (("sigmoid", 0.0), ("sigmoid", 0.5), ("ipo", 0.0)):
        loss, logged = preference_loss(policy.double(), reference, lengths, kind, beta, sft_weight)
        expect = 0.0
        for (pc, pr), (rc, rr), (nc, nr) in zip(want.tolist(), reference.tolist(),
                                                 want_n.tolist(), strict=True):  # fmt: skip
            if kind == "sigmoid":
                z = beta * ((pc - rc) - (pr - rr))
                term = math.log1p(math.exp(-z))  # -log sigmoid(z)
            else:
                term = ((pc - rc) / nc - (pr - rr) / nr - 1 / (2 * beta)) ** 2
            expect += (term + sft_weight * (-pc / nc)) / 4
        assert loss.item() == pytest.approx(expect, rel=1e-6), kind
    assert 0.0 <= logged["rewards/accuracies"] <= 1.0


def test_only_the_last_reply_is_scored(tiny_base):
    tok = AutoTokenizer.from_pretrained(tiny_base)
    pair = {
        "prompt": [{"role": "user", "content": "Is 3 + 4 = 7?"},
                   {"role": "assistant", "content": "What do you think?"},
                   {"role": "user", "content": "I think so."}],
        "chosen": [{"role": "assistant", "content": "Yes, it is 7."}],
        "rejected": [{"role": "assistant", "content": "Are you sure?"}],
    }  # fmt: skip
    (ex,), _ = encode_pairs(tok, [pair], TUTOR_SYSTEM_PROMPT, max_len=512)
    trained = tok.decode([t for t in ex.chosen_labels if t != -100])
    assert trained == "Yes, it is 7.<|im_end|>"
    assert tok.decode([t for t in ex.rejected_labels if t != -100]) == "Are you sure?<|im_end|>"


def test_a_bad_pair_row_stops_training_with_one_line(tmp_path):
    good = arithmetic_pairs(1, seed=1)[0]
    same = {**good, "rejected": good["chosen"]}
    f = write_pairs(tmp_path / "p.jsonl", [good, same])
    with pytest.raises(TrainError, match=rf"data.train_files: {f}:2: rejected\[0\].content: equal"):
        read_pairs([f])


def dpo_overrides(run: Path, sft: Path, pairs: Path, *extra: str) -> list[str]:
    return [f"train.output_dir={run}", "train.stage=dpo", f"dpo.sft_run={sft}",
            f"data.train_files=[{pairs}]", "export.after_train=false", "train.logging_steps=1",
            "train.save_steps=2", "train.eval_steps=0", "train.grad_accum=1",
            "train.per_device_batch_size=2", "train.max_steps=4", "dpo.sft_weight=0.5",
            "train.learning_rate=5e-3", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_sft(tmp_path_factory, tiny_base) -> Path:
    run = tmp_path_factory.mktemp("tiny-sft") / "run"
    cfg = load_config(PRESET, [f"train.output_dir={run}", f"model.name={tiny_base}",
                               "export.after_train=false", "train.max_steps=2",
                               "data.max_seq_len=256", "train.eval_steps=0"], env={})  # fmt: skip
    return run_stage(cfg)


def test_dpo_refuses_several_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = load_config(PRESET, ["train.stage=dpo", f"dpo.sft_run={tmp_path}"], env={})
    with pytest.raises(TrainError, match="runs in one process"):
        run_stage(cfg)


def test_missing_sft_run_is_a_config_error(tmp_path):
    cfg = load_config(PRESET, ["train.stage=dpo", f"dpo.sft_run={tmp_path}"], env={})
    with pytest.raises(ConfigError, match="dpo.sft_run: .* holds no trained adapter"):
        run_stage(cfg)


def test_resume_gives_the_same_adapter_and_export_records_both_stages(tmp_path, tiny_sft,
                                                                      tiny_base, capfd):  # fmt: skip
    pairs = write_pairs(tmp_path / "pairs.jsonl", arithmetic_pairs(12, seed=5))
    straight = tmp_path / "straight"
    run_stage(load_config(PRESET, dpo_overrides(straight, tiny_sft, pairs), env={}))
    resumed = tmp_path / "resumed"
    run_stage(load_config(PRESET, dpo_overrides(resumed, tiny_sft, pairs), env={}))
    # Cut the second run back to its step-2 checkpoint, as if the pod had stopped there.
    shutil.rmtree(resumed / "adapter")
    (resumed / "train_summary.json").unlink()
    shutil.rmtree(resumed / "checkpoint-4")
    assert latest_complete(resumed).name == "checkpoint-2"
    capfd.readouterr()
    run_stage(load_config(PRESET, dpo_overrides(resumed, tiny_sft, pairs), env={}))
    out = capfd.readouterr().out
    assert "reference: read" in out and "checkpoint-2" in out
    a = load_file(straight / "adapter" / "adapter_model.safetensors")
    b = load_file(resumed / "adapter" / "adapter_model.safetensors")
    sft = load_file(tiny_sft / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() == sft.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any((a[k] - sft[k]).abs().max() > 1e-4 for k in a)  # DPO moved the SFT adapter

    summary = json.loads((straight / "train_summary.json").read_text())
    assert summary["stage"] == "dpo" and summary["steps"] == 4
    assert summary["sft"]["steps"] == 2 and summary["data"]["pairs"]["train"] > 0
    rows = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert all("rewards/margins" in r for r in rows if "loss" in r)

    export = export_run(straight, tmp_path / "export", allow_unverified=True)
    tutor = json.loads((export / "tutor.json").read_text())
    assert tutor["train"]["stage"] == "dpo" and tutor["train"]["sft"]["steps"] == 2
    tok = AutoTokenizer.from_pretrained(export)
    gen = json.loads((export / "generation_config.json").read_text())
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert gen["eos_token_id"][0] == im_end and gen["pad_token_id"] != im_end
    ids = tok("A student says 3 + 4 = 8.", return_tensors="pt")["input_ids"]
    merged = AutoModelForCausalLM.from_pretrained(export).eval()
    unmerged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_base), straight / "adapter"
    ).eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, unmerged(ids).logits, atol=1e-4)


def test_kinds_keeps_only_those_pairs_and_an_unknown_kind_is_a_config_error():
    from trainer.dpo_data import select_pairs

    pairs = [{"id": i, "kind": k} for i, k in
             enumerate(["wrong_claim", "right_claim", "answer_demand", "wrong_claim", None])]  # fmt: skip
    kept = select_pairs(pairs, None, 0, ["wrong_claim", "answer_demand"])
    assert [p["id"] for p in kept] == [0, 2, 3]
    assert select_pairs(pairs, 2, 0, ["wrong_claim", "answer_demand"]) == [
        p for p in kept if p in select_pairs(kept, 2, 0)
    ]
    assert len(select_pairs(pairs, None, 0)) == 5  # null = every pair, with or without a kind
    with pytest.raises(ConfigError, match="dpo.kinds"):
        load_config(PRESET, ["train.stage=dpo", "dpo.kinds=[wrong]"], env={})
