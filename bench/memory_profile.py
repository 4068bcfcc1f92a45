"""What one training step of the real small model keeps for its backward pass, by kind of module:
the profile behind the peak-memory figures of `socratic bench train --vs-trl`.

    python -m bench.memory_profile                          # SmolLM2-135M, 4 x 512 packed tokens
    python -m bench.memory_profile --full-logits --seq-len 512 --batch 4
    python -m bench.memory_profile --checkpointing   # only what checkpointing keeps is counted

One packed batch of the bundled sample, built by the project's own data path, goes through the
hf backend's LoRA model once, forward and backward. Every tensor autograd saves is counted once
(by storage; the frozen weights it also saves are not activations and are left out), under the
innermost module running when it was saved: attention (q/k/v/o projections and their LoRA
adapters, rotary, SDPA), MLP (gate/up/down and the activation), norms, embeddings, and the loss
(the LM head and cross-entropy). Sizes in MiB; then the process's resident memory with model and
data loaded, and its peak over the step.
"""

from __future__ import annotations

import argparse
import os
import resource
from collections import Counter
from pathlib import Path
from typing import Any

KINDS = (("lm_head", "loss"), ("embed", "embeddings"), ("norm", "norms"),
         ("mlp", "mlp"), ("self_attn", "attention"))  # fmt: skip


def kind_of(name: str) -> str:
    """'base_model.model.model.layers.3.mlp.up_proj.lora_A' -> 'mlp'."""
    for key, kind in KINDS:
        if key in name:
            return kind
    return "other (residuals, rotary tables)"


def saved_by_kind(model: Any, batch: dict) -> Counter:
    """Bytes autograd saves during `model(**batch).loss.backward()`, by kind of module."""
    import torch

    stack, seen, sizes = ["other"], set(), Counter()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def enter(name: str) -> Any:
        def hook(module: Any, args: Any) -> None:
            stack.append(name)

        return hook

    def leave(module: Any, args: Any, output: Any) -> None:  # None: the output stays as is
        stack.pop()

    hooks = []
    for name, module in model.named_modules():
        hooks.append(module.register_forward_pre_hook(enter(name)))
        hooks.append(module.register_forward_hook(leave))

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            sizes[kind_of(stack[-1])] += storage.nbytes()
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model(**batch).loss
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    return sizes


def main() -> None:
    p = argparse.ArgumentParser(description="Saved-for-backward memory of one training step.")
    p.add_argument("--model", default="smollm2", help="model.name (default: smollm2)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per bin (default: 512)")
    p.add_argument("--batch", type=int, default=4, help="bins per batch (default: 4)")
    p.add_argument("--full-logits", action="store_true", help="the model's own loss (no chunks)")
    p.add_argument(
        "--checkpointing", action="store_true", help="gradient checkpointing on (TRL's default)"
    )
    p.add_argument(
        "--system-allocator",
        action="store_true",
        help="keep the C library's malloc (default: tcmalloc when installed, as socratic train)",
    )
    args = p.parse_args()
    from trainer.memory import loaded_allocator, reexec_with_allocator

    if not args.system_allocator:
        reexec_with_allocator()  # as `socratic train` does

    from transformers import AutoTokenizer

    from bench.common import print_table
    from trainer.backends.hf_backend import load_model
    from trainer.config import load_config
    from trainer.data import Collator
    from trainer.train import build_datasets, check_special_tokens, resolve_base

    overrides = [f"model.name={args.model}", f"data.max_seq_len={args.seq_len}"]
    if args.full_logits:
        overrides.append("train.loss_chunk_tokens=0")
    if args.checkpointing:
        overrides.append("model.gradient_checkpointing=true")
    cfg = load_config("configs/smollm2-135m-cpu.yaml", overrides, env={})
    base = resolve_base(cfg.model.name, Path(cfg.train.output_dir))
    model = load_model(cfg, base)
    model.train()  # as the Trainer does: gradient checkpointing only acts in training mode
    tokenizer = AutoTokenizer.from_pretrained(base)
    check_special_tokens(tokenizer)
    data = build_datasets(cfg, tokenizer)
    batch = Collator(tokenizer.pad_token_id, True)(data["train"][: args.batch])
    loaded, loaded_peak = rss_gib(), peak_gib()
    sizes = saved_by_kind(model, batch)
    tokens = batch["input_ids"].numel()
    total = sum(sizes.values())
    rows = [[k, v / 2**20, v / tokens / 1024] for k, v in sizes.most_common()]
    rows.append(["total", total / 2**20, total / tokens / 1024])
    print_table(
        f"saved for backward, {tokens} tokens, {'full logits' if args.full_logits else 'chunked loss'}",
        ["module kind", "MiB", "KiB per token"],
        rows,
    )
    print(
        f"resident: {loaded:.2f} GiB with model and data loaded (peak so far {loaded_peak:.2f} "
        f"GiB), peak {peak_gib():.2f} GiB over the step; allocator: "
        f"{loaded_allocator() or 'libc malloc'}"
    )


def peak_gib() -> float:
    """This process's peak resident memory so far, in GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_gib() -> float:
    """This process's resident memory now, in GiB."""
    pages = int(open("/proc/self/statm").read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**30


if __name__ == "__main__":
    main()
