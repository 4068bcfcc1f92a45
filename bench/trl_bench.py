"""The project's trainer against TRL's `SFTTrainer`: same model, data, LoRA adapter, sequence
length, effective batch and optimizer steps, each variant in its own process.

    socratic bench train --vs-trl [--quick]                 # all variants, table + JSON
    python -m bench.trl_bench --variant trl-best --model DIR --steps 5 --out r.json   # one

Variants: `project` (what `socratic train` runs: its loss mask, best-fit-decreasing packing into
one padding-free row, the chunked loss of trainer.loss), `project-full-logits` (the same with
`train.loss_chunk_tokens=0`), `trl-best` (SFTTrainer with `assistant_only_loss`, `packing` with
the `bfd` strategy, i.e. padding-free rows with position ids) and `trl-default` (SFTTrainer's
defaults: padded batches, loss on every token). Every variant gets the same PEFT model from the
project's hf backend (same LoRA init; with transformers' own attention, not the project's
per-conversation attention for packed rows), the same tokenizer fix (a pad distinct from eos)
and the same conversations; TRL tokenises them itself. Figures exclude the first step (warm-up): label
tokens/s (tokens whose label is trained), dataset tokens/s (non-pad tokens), step time, CPU
seconds, peak memory of the process (peak RSS on CPU, peak allocated on CUDA), real-token share
(non-pad / computed tokens) and the loss of every step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.trl_template import training_template

VARIANTS = {
    "project": "socratic train with the preset: own masks, BFD packing (one padding-free row), "
    "chunked loss, no gradient checkpointing",
    "project-checkpointing": "the same with model.gradient_checkpointing=true, as TRL's default",
    "project-full-logits": "the preset with train.loss_chunk_tokens=0 (the model's own loss)",
    "trl-best": "SFTTrainer: assistant_only_loss, packing (bfd: padding-free, position ids), its "
    "default gradient checkpointing",
    "trl-default": "SFTTrainer defaults: padded batches, loss on every token, gradient checkpointing",
}
# The project's config for each variant (TRL gets the same LoRA model, without the chunked loss).
OVERRIDES = {
    "project": [],
    "project-checkpointing": ["model.gradient_checkpointing=true"],
    "project-full-logits": ["train.loss_chunk_tokens=0"],
    "trl-best": ["train.loss_chunk_tokens=0"],
    "trl-default": ["train.loss_chunk_tokens=0"],
}


class Meter:
    """Counts what each micro-batch holds (wrapping the collator) and times each optimizer step
    (as a Trainer callback); step 1 is warm-up and left out of the rates."""

    def __init__(self, collate: Any, grad_accum: int):
        self.collate, self.grad_accum = collate, grad_accum
        self.batches: list[tuple[int, int, int]] = []  # (label, real, computed) tokens
        self.marks: list[tuple[float, float]] = []  # (wall, cpu) at each step end
        self.losses: list[float] = []

    def __call__(self, examples: list) -> dict:
        batch = self.collate(examples)
        labels, ids = batch["labels"], batch["input_ids"]
        mask = batch.get("attention_mask")
        real = int(mask.sum()) if mask is not None else ids.numel()
        self.batches.append((int((labels[:, 1:] != -100).sum()), real, ids.numel()))
        return batch

    def callback(self) -> Any:
        from transformers import TrainerCallback

        meter = self

        class _Clock(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                meter.marks.append((time.perf_counter(), time.process_time()))

            def on_step_end(self, args, state, control, **kwargs):
                meter.marks.append((time.perf_counter(), time.process_time()))

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    meter.losses.append(float(logs["loss"]))

        return _Clock()

    def figures(self) -> dict[str, Any]:
        steps = len(self.marks) - 1
        timed = self.batches[self.grad_accum : steps * self.grad_accum]  # steps 2..N
        wall = self.marks[-1][0] - self.marks[1][0]
        cpu = self.marks[-1][1] - self.marks[1][1]
        label, real, computed = (sum(b[i] for b in timed) for i in range(3))
        return {
            "steps": steps,
            "timed_steps": steps - 1,
            "seconds": wall,
            "cpu_seconds": cpu,
            "step_s": wall / max(1, steps - 1),
            "label_tokens": label,
            "real_tokens": real,
            "computed_tokens": computed,
            "label_tokens_per_s": label / wall,
            "real_tokens_per_s": real / wall,
            "label_tokens_per_cpu_s": label / cpu,
            "real_tokens_per_cpu_s": real / cpu,
            "real_token_share": real / max(1, computed),
            "losses": self.losses,
            "final_loss": self.losses[-1] if self.losses else None,
            "mean_loss": sum(self.losses) / len(self.losses) if self.losses else None,
        }


def project_config(args: argparse.Namespace, out: Path):
    from trainer.config import load_config

    overrides = [f"model.name={args.model}", f"data.max_seq_len={args.seq_len}",
                 f"train.per_device_batch_size={args.batch}", f"train.grad_accum={args.grad_accum}",
                 f"train.max_steps={args.steps}", f"train.output_dir={out}", "train.eval_steps=0",
                 "train.save_steps=100000", "train.logging_steps=1", "train.resume=never",
                 "export.after_train=false", "data.eval_split=0.05"]  # fmt: skip
    if args.data:
        overrides.append(f"data.train_files=[{args.data}]")
    return load_config(args.preset, overrides + OVERRIDES[args.variant], env={})


def build_trainer(args: argparse.Namespace, out: Path) -> tuple[Any, Meter]:
    """The variant's Trainer with a Meter attached; the model comes from the project's backend."""
    import torch
    from transformers import AutoTokenizer

    from trainer.backends.hf_backend import load_model
    from trainer.train import build_datasets, check_special_tokens, make_trainer, resolve_base

    project = args.variant.startswith("project")
    cfg = project_config(args, out)
    cfg.model.name = resolve_base(cfg.model.name, out)
    torch.manual_seed(cfg.train.seed)  # the same LoRA init in every variant
    model = load_model(cfg, cfg.model.name)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.name)
    check_special_tokens(tokenizer)
    data = build_datasets(cfg, tokenizer)
    if project:
        trainer, _ = make_trainer(cfg, model, tokenizer, data, out, cfg.to_yaml(), None)
    else:  # TRL gets transformers' own attention, not the project's per-conversation one
        model.get_base_model().set_attn_implementation(cfg.model.attn_implementation)
        trainer = trl_trainer(cfg, model, tokenizer, data, out, best=args.variant == "trl-best")
    meter = Meter(trainer.data_collator, cfg.train.grad_accum)
    trainer.data_collator = meter
    trainer.add_callback(meter.callback())
    return trainer, meter


def trl_trainer(cfg, model, tokenizer, data, out: Path, best: bool) -> Any:
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from bench.trl_cpu import install
    from trainer.data import load_conversations, split_eval
    from tutor.prompts import TUTOR_SYSTEM_PROMPT

    if install():
        print("trl: no Triton here; its fused LM head runs as bench.trl_cpu's plain-torch twin")
    d, t = cfg.data, cfg.train
    convs, _ = load_conversations(
        data["files"], d.system_prompt or TUTOR_SYSTEM_PROMPT, d.format, d.max_exchanges, d.dedupe
    )
    train_convs, _ = split_eval(convs, d.eval_split, t.seed)  # the project's split
    cuda = torch.cuda.is_available()
    template = training_template(tokenizer, out) if best else None
    sft = SFTConfig(
        output_dir=str(out), max_steps=t.max_steps, learning_rate=t.learning_rate,
        per_device_train_batch_size=t.per_device_batch_size, gradient_accumulation_steps=t.grad_accum,
        lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm, optim=t.optim, logging_steps=1, save_strategy="no",
        report_to="none", seed=t.seed, use_cpu=not cuda, bf16=cuda and model.dtype == torch.bfloat16,
        max_length=d.max_seq_len, packing=best, assistant_only_loss=best,
        chat_template_path=template, dataloader_num_workers=0,
    )  # fmt: skip
    return SFTTrainer(
        model=model,
        args=sft,
        train_dataset=Dataset.from_list([{"messages": c} for c in train_convs]),
        processing_class=tokenizer,
    )


def peak_memory_gb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def torch_threads() -> int | None:
    """1 when the machine is already busy (load average above its core count): two threads that
    wait on each other while one is descheduled waste more than they gain. None = torch's
    default (every core)."""
    cores = len(os.sched_getaffinity(0))
    return 1 if os.getloadavg()[0] > cores else None


def child(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out).with_suffix("")
    trainer, meter = build_trainer(args, out)
    trainer.train()
    from trainer.memory import loaded_allocator

    result = {"variant": args.variant, **meter.figures(), "peak_mem_gb": peak_memory_gb(),
              "allocator": loaded_allocator() or "libc malloc"}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")


def run_variant(variant: str, settings: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """One variant in its own process (peak memory is per process); its figures. The project's
    variants run under the allocator `socratic train` picks (trainer/memory.py), TRL's under the
    one a plain Python process has."""
    from trainer.memory import allocator_env, find_allocator

    out = tmp / f"{variant}.json"
    cmd = [sys.executable, "-m", "bench.trl_bench", "--variant", variant, "--out", str(out)]
    for key, value in settings.items():
        if value is not None:
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    log = tmp / f"{variant}.log"
    with open(log, "w") as f:
        env = allocator_env(os.environ, find_allocator()) if variant.startswith("project") else None
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        raise RuntimeError(f"{variant} exited {code}; last lines:\n{log.read_text()[-3000:]}")
    return json.loads(out.read_text())


def run(quick: bool) -> dict[str, Any]:
    """CPU: SmolLM2-135M (the real small model), 512-token sequences, 4 per step. CUDA: the
    Qwen2.5-7B architecture with random weights under the GPU preset (4-bit, 2048 x 2 x 8)."""
    import tempfile

    import torch

    if not torch.cuda.is_available():
        settings = {"preset": "configs/smollm2-135m-cpu.yaml", "model": "smollm2", "seq_len": 512,
                    "batch": 4, "grad_accum": 1, "steps": 3 if quick else 6,
                    "threads": torch_threads()}  # fmt: skip
        if settings["threads"]:
            print(f"busy machine (load {os.getloadavg()[0]:.1f}): 1 torch thread per variant")
        return compare(settings)
    from bench.data_bench import make_corpus
    from bench.train_bench import write_qwen7b_random

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_qwen7b_random(Path(tmp) / "qwen2.5-7b-random")
        corpus = Path(tmp) / "corpus.jsonl"
        rows = make_corpus(2000)
        corpus.write_text("".join(json.dumps({"conversations": c}) + "\n" for c in rows))
        settings = {"preset": "configs/qwen2.5-7b-qlora.yaml", "model": str(model_dir),
                    "data": str(corpus), "seq_len": 2048, "batch": 2, "grad_accum": 8,
                    "steps": 3 if quick else 6}  # fmt: skip
        return compare(settings)


def compare(settings: dict[str, Any]) -> dict[str, Any]:
    """Every variant with `settings` (run_variant's flags); the table, the ratios and the goals."""
    import tempfile

    from bench.common import print_table

    names = list(VARIANTS)
    with tempfile.TemporaryDirectory() as tmp:
        rows = {n: run_variant(n, settings, Path(tmp)) for n in names}
    print_table(
        f"trainer vs TRL {trl_version()} SFTTrainer ({settings['steps']} steps, first = warm-up)",
        ["variant", "label tok/s", "dataset tok/s", "label tok/CPU-s", "step s", "peak GiB",
         "real share", "mean loss", "final loss", "allocator"],
        [[n, r["label_tokens_per_s"], r["real_tokens_per_s"], r["label_tokens_per_cpu_s"],
          r["step_s"], r["peak_mem_gb"], r["real_token_share"], r["mean_loss"], r["final_loss"],
          r["allocator"]]
         for n, r in rows.items()],
    )  # fmt: skip
    figures = {
        "settings": settings,
        "variants": VARIANTS,
        "results": rows,
        **ratios(rows, settings),
    }
    print(f"speeds: tokens per {'CPU-second (1 thread, busy machine)' if figures['speed_basis'] == 'cpu' else 'second'}; "
          "goals: project-checkpointing against TRL (gradient checkpointing on in both)")  # fmt: skip
    print(f"preset (no checkpointing) vs trl-best: speed x{figures['preset_speedup_vs_trl']:.2f}, "
          f"peak memory x{figures['preset_peak_mem_ratio_vs_trl']:.2f}; chunked vs full-logits "
          f"loss: speed x{figures['chunked_loss_speedup']:.2f}, "
          f"peak memory x{figures['chunked_loss_peak_mem_ratio']:.2f}")  # fmt: skip
    goals = [("speedup_vs_trl", ">=", 1.0), ("speedup_vs_trl_default", ">=", 1.3),
             ("peak_mem_ratio_vs_trl", "<=", 0.7)]  # fmt: skip
    for key, op, goal in goals:
        value = figures[key]
        met = value >= goal if op == ">=" else value <= goal
        print(f"{key}: {value:.3f} (goal {op} {goal}: {'met' if met else 'MISSED'})")
    print(
        f"loss gap project - trl-best: {figures['loss_gap_vs_trl']:+.4f} mean over the steps, "
        f"{figures['final_loss_gap_vs_trl']:+.4f} at the last step"
    )
    return figures


def ratios(rows: dict[str, dict], settings: dict[str, Any]) -> dict[str, Any]:
    """The goal figures and the others. The goals compare like with like: the project with
    gradient checkpointing, as TRL runs by default. Speeds are tokens per CPU-second when each
    variant ran on one thread (a busy machine: what one core does, whatever else runs), else
    tokens per wall-clock second."""
    basis = "cpu" if settings.get("threads") == 1 else "wall"
    per = "_per_cpu_s" if basis == "cpu" else "_per_s"
    ours, best, default = rows["project-checkpointing"], rows["trl-best"], rows["trl-default"]
    preset, full = rows["project"], rows["project-full-logits"]

    def speed(a: dict, b: dict, tokens: str = "label") -> float:
        return a[f"{tokens}_tokens{per}"] / b[f"{tokens}_tokens{per}"]

    return {
        "speed_basis": basis,
        "speedup_vs_trl": speed(ours, best),
        # the default trains every token: compare the data each goes through (non-pad tokens)
        "speedup_vs_trl_default": speed(ours, default, "real"),
        "peak_mem_ratio_vs_trl": ours["peak_mem_gb"] / best["peak_mem_gb"],
        "wall_speedup_vs_trl": ours["label_tokens_per_s"] / best["label_tokens_per_s"],
        "loss_gap_vs_trl": ours["mean_loss"] - best["mean_loss"],
        "final_loss_gap_vs_trl": ours["final_loss"] - best["final_loss"],
        "preset_speedup_vs_trl": speed(preset, best),
        "preset_peak_mem_ratio_vs_trl": preset["peak_mem_gb"] / best["peak_mem_gb"],
        "chunked_loss_speedup": speed(preset, full),
        "chunked_loss_peak_mem_ratio": preset["peak_mem_gb"] / full["peak_mem_gb"],
    }


def trl_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("trl")


def main() -> None:
    p = argparse.ArgumentParser(description="One variant of the trainer-vs-TRL benchmark.")
    p.add_argument("--variant", choices=list(VARIANTS), required=True, help="what to train")
    p.add_argument("--out", required=True, help="where to write the variant's figures (JSON)")
    p.add_argument(
        "--preset",
        default="configs/smollm2-135m-cpu.yaml",
        help="training preset (default: configs/smollm2-135m-cpu.yaml)",
    )
    p.add_argument("--model", default="smollm2", help="model.name (default: smollm2)")
    p.add_argument("--data", default=None, help="a JSONL of conversations (default: the preset's)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens per sequence (default: 512)")
    p.add_argument("--batch", type=int, default=4, help="sequences per micro-batch (default: 4)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step (default: 1)")
    p.add_argument("--steps", type=int, default=5, help="optimizer steps, first = warm-up (5)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    child(p.parse_args())


if __name__ == "__main__":
    main()
