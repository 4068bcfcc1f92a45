"""The project's preference stage against TRL's `DPOTrainer` defaults: same model, pairs, LoRA
adapter, lengths, batch and optimizer steps, each variant in its own process.

    socratic bench train --vs-trl [--quick]        # with the SFT comparison (bench/trl_bench.py)
    python -m bench.trl_dpo_bench --variant trl-dpo --steps 4 --out r.json      # one variant

Variants: `project-dpo` (trainer/dpo.py: its masks, the reply log-probs through the chunked LM
head, the reference scored once before the first step, timed apart and added to the total),
`trl-dpo` (DPOTrainer with its defaults: sigmoid loss, the reference scored at every step by a
frozen copy of the adapter, gradient checkpointing, its own tokenisation). Both start from the
same fresh LoRA adapter on SmolLM2-135M-Instruct (so the reference is the base for both), on the
bundled pairs, `max_length` = the project's `data.max_seq_len`. On CPU TRL's fused LM head runs
through the plain-torch twin of bench/trl_cpu.py. Figures exclude the first step (warm-up):
reply tokens/s (tokens whose log-prob enters the loss), dataset tokens/s (non-pad), step time,
peak memory of the process and the loss of every step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.trl_bench import peak_memory_gb, torch_threads, trl_version

VARIANTS = {
    "project-dpo": "trainer/dpo.py: own masks, chunked LM head, reference scored once (timed)",
    "trl-dpo": "DPOTrainer defaults: reference pass every step, gradient checkpointing",
}


class Meter:
    """Counts each micro-batch (wrapping the collator), times each optimizer step."""

    def __init__(self, collate: Any, reply_key: str):
        self.collate, self.reply_key = collate, reply_key
        self.batches: list[tuple[int, int]] = []  # (reply tokens, non-pad tokens)
        self.marks: list[float] = []
        self.losses: list[float] = []

    def __call__(self, examples: list) -> dict:
        batch = self.collate(examples)
        mark = batch[self.reply_key]
        replies = (
            int((mark[:, 1:] != -100).sum()) if self.reply_key == "labels" else int(mark.sum())
        )
        self.batches.append((replies, int(batch["attention_mask"].sum())))
        return batch

    def callback(self) -> Any:
        from transformers import TrainerCallback

        meter = self

        class _Clock(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                meter.marks.append(time.perf_counter())

            def on_step_end(self, args, state, control, **kwargs):
                meter.marks.append(time.perf_counter())

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    meter.losses.append(float(logs["loss"]))

        return _Clock()

    def figures(self, grad_accum: int) -> dict[str, Any]:
        steps = len(self.marks) - 1
        timed = self.batches[grad_accum : steps * grad_accum]
        wall = self.marks[-1] - self.marks[1]
        replies, real = sum(b[0] for b in timed), sum(b[1] for b in timed)
        return {"steps": steps, "step_s": wall / max(1, steps - 1), "seconds": wall,
                "reply_tokens_per_s": replies / wall, "real_tokens_per_s": real / wall,
                "losses": self.losses, "final_loss": self.losses[-1] if self.losses else None}  # fmt: skip


def child(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoTokenizer

    from trainer.backends.hf_backend import load_model
    from trainer.config import load_config
    from trainer.dpo import attach_reference, build_pairs
    from trainer.train import check_special_tokens, resolve_base

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out).with_suffix("")
    out.mkdir(parents=True, exist_ok=True)  # the reference pass writes into it before training
    overrides = [f"train.output_dir={out}", f"data.max_seq_len={args.seq_len}",
                 f"train.per_device_batch_size={args.batch}", "train.grad_accum=1",
                 f"train.max_steps={args.steps}", "train.eval_steps=0", "train.save_steps=100000",
                 "train.logging_steps=1", "train.resume=never", "data.packing=false", "data.eval_split=0",
                 f"dpo.max_pairs={args.batch * args.steps}"]  # fmt: skip
    if args.data:
        overrides.append(f"data.train_files=[{args.data}]")
    cfg = load_config("configs/smollm2-135m-dpo-cpu.yaml", overrides, env={})
    cfg.model.name = resolve_base("smollm2", out)
    cfg.lora.alpha = 32  # the SFT preset's LoRA (the DPO preset takes its lora from the SFT run)
    if args.variant == "trl-dpo":
        cfg.train.loss_chunk_tokens = 0  # TRL gets the plain model; its own fused head
    model = load_model(cfg, cfg.model.name)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.name)
    check_special_tokens(tokenizer)
    data = build_pairs(cfg, tokenizer, None)
    reference_s = 0.0
    if args.variant == "project-dpo":
        from trainer.dpo_data import PairCollator
        from trainer.dpo_trainer import PreferenceTrainer
        from trainer.train import make_trainer

        t0 = time.perf_counter()
        attach_reference(model, data, out, "bench", args.batch, 256, tokenizer.pad_token_id, True)
        reference_s = time.perf_counter() - t0
        meter = Meter(PairCollator(tokenizer.pad_token_id), "labels")
        trainer, _ = make_trainer(cfg, model, tokenizer, data, out, cfg.to_yaml(), None,
                                  trainer_cls=PreferenceTrainer, collator=meter)  # fmt: skip
        trainer.setup_preference(cfg, 256)
    else:
        trainer, meter = trl_trainer(cfg, model, tokenizer, data, out)
    trainer.add_callback(meter.callback())
    trainer.train()
    figures = meter.figures(1)
    result = {"variant": args.variant, **figures, "reference_s": reference_s,
              "total_s": figures["seconds"] + reference_s, "peak_mem_gb": peak_memory_gb()}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")


def trl_trainer(cfg, model, tokenizer, data, out: Path) -> tuple[Any, Meter]:
    """DPOTrainer with its defaults, on the same pairs (prompt with the same system prompt)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from bench.trl_cpu import install
    from trainer.dpo_data import read_pairs, select_pairs
    from tutor.schema import with_system_prompt

    install()  # no Triton on CPU: the plain-torch twin of TRL's fused LM head
    pairs = select_pairs(
        read_pairs(data["files"]), cfg.dpo.max_pairs, cfg.train.seed, cfg.dpo.kinds
    )
    rows = [{"prompt": with_system_prompt(list(p["prompt"]), data["system_prompt"]),
             "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]  # fmt: skip
    t = cfg.train
    args = DPOConfig(output_dir=str(out), max_steps=t.max_steps, learning_rate=t.learning_rate,
                     per_device_train_batch_size=t.per_device_batch_size, gradient_accumulation_steps=1,
                     logging_steps=1, save_strategy="no", report_to="none", max_length=cfg.data.max_seq_len,
                     use_cpu=True, bf16=False, seed=t.seed)  # fmt: skip
    meter = Meter(DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id), "completion_mask")
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, data_collator=meter)  # fmt: skip
    return trainer, meter


def run_variant(variant: str, settings: dict[str, Any], tmp: Path) -> dict[str, Any]:
    out = tmp / f"{variant}.json"
    cmd = [sys.executable, "-m", "bench.trl_dpo_bench", "--variant", variant, "--out", str(out)]
    for key, value in settings.items():
        if value is not None:
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    log = tmp / f"{variant}.log"
    with open(log, "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RuntimeError(f"{variant} exited {code}; last lines:\n{log.read_text()[-3000:]}")
    return json.loads(out.read_text())


def run(quick: bool) -> dict[str, Any]:
    """SmolLM2-135M on CPU (the GPU comparison is the pod's: scripts/gpu_check.sh)."""
    import tempfile

    from bench.common import print_table

    settings = {"seq_len": 512, "batch": 4, "steps": 3 if quick else 6, "threads": torch_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        rows = {n: run_variant(n, settings, Path(tmp)) for n in VARIANTS}
    print_table(
        f"DPO stage vs TRL {trl_version()} DPOTrainer ({settings['steps']} steps, first = warm-up)",
        ["variant", "reply tok/s", "dataset tok/s", "step s", "reference s", "peak GiB", "final loss"],
        [[n, r["reply_tokens_per_s"], r["real_tokens_per_s"], r["step_s"], r["reference_s"],
          r["peak_mem_gb"], r["final_loss"]] for n, r in rows.items()],
    )  # fmt: skip
    ours, trl = rows["project-dpo"], rows["trl-dpo"]
    figures = {"speedup_vs_trl": ours["real_tokens_per_s"] / trl["real_tokens_per_s"],
               "peak_mem_ratio_vs_trl": ours["peak_mem_gb"] / trl["peak_mem_gb"]}  # fmt: skip
    print(f"project-dpo vs trl-dpo: dataset tokens/s x{figures['speedup_vs_trl']:.2f} (reference "
          f"pass excluded; {ours['reference_s']:.1f} s once), peak memory "
          f"x{figures['peak_mem_ratio_vs_trl']:.2f}")  # fmt: skip
    return {"settings": settings, "trl": trl_version(), "variants": rows, "figures": figures}


def main() -> None:
    p = argparse.ArgumentParser(description="One variant of the DPO-stage-vs-TRL benchmark.")
    p.add_argument("--variant", choices=list(VARIANTS), required=True, help="what to train")
    p.add_argument("--out", required=True, help="where to write the variant's figures (JSON)")
    p.add_argument("--seq-len", type=int, default=512, help="max tokens per side (default: 512)")
    p.add_argument("--batch", type=int, default=4, help="pairs per step (default: 4)")
    p.add_argument("--steps", type=int, default=4, help="optimizer steps, first = warm-up (4)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--data", default=None, help="a pairs JSONL (default: data/pairs/pairs.jsonl)")
    child(p.parse_args())


if __name__ == "__main__":
    main()
