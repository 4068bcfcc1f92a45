"""The pieces of the peer comparisons that can be checked without running them: TRL's fused LM head
twin (bench.trl_cpu) gives the log-probabilities, entropies and hidden-state gradients of full
log-softmax over several vocabulary and token tiles; the ChatML training template renders exactly
like the model's template and its assistant mask is the project's loss mask; `socratic bench`
plans the flagged comparisons (alone, or with `all`) and refuses a flag on the wrong benchmark;
CPU accounting includes child processes; the generated nginx config passes `nginx -t`."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench import trl_cpu
from bench.cli import plan
from bench.common import cpu_seconds


def test_trl_twin_matches_full_log_softmax(monkeypatch) -> None:
    monkeypatch.setattr(trl_cpu, "TOKEN_CHUNK", 5)  # several token tiles
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(12, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(30, 8, generator=gen, dtype=torch.float64)
    targets = torch.randint(0, 30, (12,), generator=gen)
    scale = torch.rand(12, generator=gen, dtype=torch.float64)

    log_probs, entropy, _, _, top1 = trl_cpu.TorchChunkedLogProb.apply(
        hidden, weight, None, targets, 1.0, 7, None, 1.0, ("entropy", "is_top1")
    )
    (log_probs * scale).sum().backward()

    h2 = hidden.detach().clone().requires_grad_()
    full = torch.log_softmax(h2 @ weight.t(), dim=-1)
    expected = full.gather(1, targets[:, None]).squeeze(1)
    (expected * scale).sum().backward()
    torch.testing.assert_close(log_probs.double(), expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        entropy.double(), -(full.exp() * full).sum(-1).detach(), rtol=1e-5, atol=1e-6
    )
    assert torch.equal(top1, full.argmax(-1) == targets)
    torch.testing.assert_close(hidden.grad, h2.grad, rtol=1e-5, atol=1e-6)


def test_chatml_training_template_trains_what_the_project_trains(tiny_base, sample_file) -> None:
    from transformers import AutoTokenizer

    from bench.trl_template import chatml_training_template
    from trainer.data import IGNORE, encode_conversation

    tok = AutoTokenizer.from_pretrained(tiny_base)
    template = chatml_training_template(tok)
    for line in sample_file.read_text().splitlines()[:3]:
        conv = json.loads(line)["conversations"]
        own = tok.apply_chat_template(conv, tokenize=False)
        assert tok.apply_chat_template(conv, tokenize=False, chat_template=template) == own
        out = tok.apply_chat_template(
            conv, chat_template=template, return_dict=True, return_assistant_tokens_mask=True
        )
        ids, labels = encode_conversation(tok, conv)
        trained = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
        assert trained == [t for t in labels if t != IGNORE]


def _args(name: str, **flags: bool) -> argparse.Namespace:
    return argparse.Namespace(
        name=name, **{f: flags.get(f, False) for f in ("vs_trl", "peers", "vllm")}
    )


def test_bench_plans_comparisons() -> None:
    assert plan(_args("train")) == [("train", "bench.train_bench")]
    assert plan(_args("train", vs_trl=True)) == [
        ("train-vs-trl", "bench.trl_bench"),
        ("train-dpo-vs-trl", "bench.trl_dpo_bench"),
    ]
    assert plan(_args("gateway", peers=True, vllm=True)) == [
        ("gateway-peers", "bench.gateway_peers"),
        ("gateway-vllm", "bench.gateway_vllm"),
    ]
    everything = plan(_args("all", vs_trl=True, peers=True))
    assert ("gateway", "bench.gateway_bench") in everything
    assert ("train-vs-trl", "bench.trl_bench") in everything
    assert ("gateway-peers", "bench.gateway_peers") in everything
    with pytest.raises(SystemExit, match="--vs-trl applies to `bench train`"):
        plan(_args("gateway", vs_trl=True))


def test_cpu_seconds_counts_child_processes() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    code = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {burn!r}]).wait()\n"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.1)
        seen = 0.0
        while parent.poll() is None:
            seen = max(seen, cpu_seconds(parent.pid))
            time.sleep(0.02)
    finally:
        parent.wait()
    assert seen >= 0.2  # the child's burn, read while it ran


@pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                    reason="nginx not installed")  # fmt: skip
def test_nginx_config_is_valid(tmp_path: Path) -> None:
    from bench.peers import nginx_binary, nginx_config

    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config(18000, 18001, tmp_path))
    check = subprocess.run(
        [nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_trl_twin_fills_the_mean_logits_slot_dpo_reads() -> None:
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(6, 8, generator=gen, dtype=torch.float64)
    weight = torch.randn(30, 8, generator=gen, dtype=torch.float64)
    targets = torch.randint(0, 30, (6,), generator=gen)
    outputs = ("log_probs", "entropy", "mean_logits", "is_top1")  # what DPOTrainer asks for
    _, _, _, mean_logits, _ = trl_cpu.TorchChunkedLogProb.apply(
        hidden, weight, None, targets, 2.0, 7, None, 1.0, outputs
    )
    torch.testing.assert_close(mean_logits.double(), (hidden @ weight.t()).mean(-1) / 2.0)
    sft = trl_cpu.TorchChunkedLogProb.apply(hidden, weight, None, targets, 1.0, 7, None, 1.0)
    assert sft[3] is None  # SFTTrainer does not ask for it
