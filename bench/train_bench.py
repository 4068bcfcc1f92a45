"""Training throughput benchmark: tokens/s, step time and peak memory of `socratic train`.

    socratic bench train [--quick]

CPU: the tiny preset (configs/tiny-cpu.yaml), packing on and off. CUDA: the Qwen2.5-7B-Instruct
architecture with random weights (its config, written locally; nothing is downloaded) under the GPU
preset's settings (4-bit NF4 QLoRA rank 16, sequence length 2048, batch 2 x accumulation 8), for
the `hf` and `unsloth` backends, packing on and off; model FLOPs utilisation and the unsloth/hf
ratio. Each variant is the real `socratic train` in its own process (unsloth patches transformers
for the whole process, and peak memory is per process). Tokens are real (non-pad) tokens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import print_table

# Qwen/Qwen2.5-7B-Instruct's config.json (architecture only; weights are random here).
QWEN25_7B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
    "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
    "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
    "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06,
    "tie_word_embeddings": False, "use_sliding_window": False, "sliding_window": 131072,
    "max_window_layers": 28, "attention_dropout": 0.0, "initializer_range": 0.02,
    "torch_dtype": "bfloat16",
}  # fmt: skip
H100_BF16_FLOPS = 989e12  # dense bf16 peak of an H100 SXM (and H200), FLOP/s: the MFU denominator


def mfu(row: dict[str, Any]) -> float:
    """Model FLOPs utilisation: transformers' `total_flos` per second over the bf16 peak."""
    return (row["total_flos"] or 0) / row["seconds"] / H100_BF16_FLOPS


def variant_command(
    config: str, overrides: list[str], out: Path, export: bool = False
) -> list[str]:
    """The `socratic train` command line of one variant (export after training when `export`)."""
    return [sys.executable, "-m", "trainer.cli", "train", "--config", config, *overrides,
            f"train.output_dir={out}", f"export.after_train={str(export).lower()}",
            "train.eval_steps=0", "train.save_steps=100000", "train.logging_steps=1",
            "train.resume=never"]  # fmt: skip


def run_variant(
    config: str,
    overrides: list[str],
    out: Path,
    export: bool = False,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run `socratic train` once (log in `<out>.log`); return its summary figures. Raises
    RuntimeError when it fails, subprocess.TimeoutExpired after `timeout_s` seconds."""
    cmd = variant_command(config, overrides, out, export)
    log = out.parent / f"{out.name}.log"
    with open(log, "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout_s).returncode
    if code != 0:
        raise RuntimeError(f"train exited {code}; last lines:\n{log.read_text()[-2000:]}")
    summary = json.loads((out / "train_summary.json").read_text())
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    end = next(r for r in reversed(rows) if "train_runtime" in r and "train_loss" in r)
    tokens = end["num_input_tokens_seen"]  # non-padding tokens
    steps = summary["steps"]
    return {
        "tokens": tokens,
        "steps": steps,
        "seconds": end["train_runtime"],
        "tokens_per_s": tokens / end["train_runtime"],
        "step_s": end["train_runtime"] / max(1, steps),
        "peak_mem_gb": summary["peak_mem_gb"],
        "total_flos": end.get("total_flos"),
        "real_token_share": summary["data"]["real_token_share"],
    }


def cpu_rows(quick: bool, tmp: Path) -> list[dict[str, Any]]:
    epochs = "1" if quick else "3"
    rows = []
    for packing in (True, False):
        out = tmp / f"cpu-packing-{packing}"
        r = run_variant(
            "configs/tiny-cpu.yaml", [f"train.epochs={epochs}", f"data.packing={packing}"], out
        )
        rows.append({"device": "cpu", "model": "tiny", "backend": "hf", "packing": packing, **r})
    return rows


def write_qwen7b_random(dest: Path) -> Path:
    """A Qwen2.5-7B-architecture directory: its config, the tiny tokenizer, random bf16 weights."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from trainer.tiny import build_tiny_model

    tiny = build_tiny_model(dest.parent / "tiny-tokenizer")
    tok = AutoTokenizer.from_pretrained(tiny)
    config = Qwen2Config(
        **{k: v for k, v in QWEN25_7B.items() if k not in ("architectures", "model_type")}
    )
    config.eos_token_id, config.pad_token_id, config.bos_token_id = (
        tok.eos_token_id,
        tok.pad_token_id,
        None,
    )
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(dest, max_shard_size="5GB")
    tok.save_pretrained(dest)
    del model
    torch.cuda.empty_cache()
    return dest


def gpu_rows(quick: bool, tmp: Path) -> list[dict[str, Any]]:
    from bench.data_bench import make_corpus

    model_dir = write_qwen7b_random(tmp / "qwen2.5-7b-random")
    corpus = tmp / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"conversations": c}) + "\n" for c in make_corpus(4000)))
    steps = "3" if quick else "10"
    rows = []
    for backend in ("hf", "unsloth"):
        for packing in (True, False):
            out = tmp / f"gpu-{backend}-packing-{packing}"
            overrides = [f"model.name={model_dir}", f"train.backend={backend}", f"data.packing={packing}",
                         f"data.train_files=[{corpus}]", f"train.max_steps={steps}"]  # fmt: skip
            r = run_variant("configs/qwen2.5-7b-qlora.yaml", overrides, out)
            r["mfu"] = mfu(r)
            rows.append(
                {
                    "device": "cuda",
                    "model": "qwen2.5-7b",
                    "backend": backend,
                    "packing": packing,
                    **r,
                }
            )
    return rows


def run(quick: bool) -> dict[str, Any]:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        rows = (
            gpu_rows(quick, Path(tmp)) if torch.cuda.is_available() else cpu_rows(quick, Path(tmp))
        )
    print_table(
        "socratic train throughput (tokens are non-padding)",
        ["device", "model", "backend", "packing", "steps", "tokens/s", "step s", "peak GiB", "MFU"],
        [[r["device"], r["model"], r["backend"], r["packing"], r["steps"], r["tokens_per_s"],
          r["step_s"], r["peak_mem_gb"], r.get("mfu", "-")] for r in rows],
    )  # fmt: skip
    figures: dict[str, Any] = {"results": rows}
    by = {(r["backend"], r["packing"]): r for r in rows}
    if ("unsloth", True) in by:
        figures["unsloth_over_hf"] = (
            by[("unsloth", True)]["tokens_per_s"] / by[("hf", True)]["tokens_per_s"]
        )
        print(f"unsloth / hf tokens/s (packing on): {figures['unsloth_over_hf']:.2f}")
    off, on = by.get(("hf", False)), by.get(("hf", True))
    figures["packing_speedup"] = on["tokens_per_s"] / off["tokens_per_s"]
    print(f"packing on / off tokens/s (hf): {figures['packing_speedup']:.2f}")
    return figures
