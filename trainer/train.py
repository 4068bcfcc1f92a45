"""The training job: config -> backend -> data -> LoRA SFT with `transformers.Trainer` -> adapter.

    socratic train --config configs/tiny-cpu.yaml                 # CPU, offline, ~1 minute
    socratic train --config configs/qwen2.5-7b-qlora.yaml train.output_dir=/workspace/runs/a

Reads top to bottom: resolve the config and backend, load the model (unsloth before transformers),
tokenise with the shared loss mask, pack, train with checkpoints, save the adapter and a summary,
then export when `export.after_train` is on. Outputs land in `train.output_dir` (see
docs/training.md): config.yaml, metrics.jsonl, loss.png, checkpoint-<step>/, adapter/,
train_summary.json.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from trainer.backends import choose_backend, torch_dtype
from trainer.checkpoints import check_resume, resolve_resume
from trainer.config import Config, TrainError, resolve_path
from trainer.data import (
    Collator,
    encode_all,
    load_conversations,
    pack_examples,
    padded_share,
    split_eval,
)

TINY = "tiny"


def train(cfg: Config) -> Path:
    """Train a LoRA adapter per `cfg`; returns the run dir (also when stopped early by SIGTERM)."""
    run_dir = Path(cfg.train.output_dir)
    main = int(os.environ.get("RANK", "0")) == 0
    check_resume(cfg.train.resume)
    backend, why = choose_backend(cfg.train.backend)
    cfg = cfg.model_copy(deep=True)
    cfg.model.name = resolve_base(cfg.model.name, run_dir)
    if main and (warning := sample_only_warning(cfg)):
        print(warning)
    config_yaml = cfg.to_yaml()
    if start_run(cfg, run_dir, config_yaml, backend, main):
        return run_dir
    print(f"backend: {backend} ({why})")

    if backend == "unsloth":  # must import unsloth before transformers
        from trainer.backends.unsloth_backend import SEQ_LENGTHS_KEY, load_model
    else:
        from trainer.backends.hf_backend import load_model

        SEQ_LENGTHS_KEY = None
    model = load_model(cfg, cfg.model.name)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.model.name, revision=cfg.model.revision)
    check_special_tokens(tokenizer)
    data = build_datasets(cfg, tokenizer)
    print(f"data: {data['stats'].line()}; eval {len(data['eval'])} sequences")

    trainer, stop = make_trainer(cfg, model, tokenizer, data, run_dir, config_yaml, SEQ_LENGTHS_KEY)
    seconds = run_trainer(trainer, stop, run_dir, cfg.train.resume)
    if seconds is None:
        return run_dir
    if main:
        finish(cfg, trainer, tokenizer, data, run_dir, backend, seconds)
    if cfg.export.after_train and main:
        export(cfg, run_dir, backend)
    return run_dir


def start_run(cfg: Config, run_dir: Path, config_yaml: str, backend: str, main: bool) -> bool:
    """True when `run_dir` already finished with this config (exported again when asked): there
    is nothing to train. Else the run dir is made and the resolved config saved and printed."""
    if cfg.train.resume == "auto" and finished(run_dir, config_yaml):
        print(f"{run_dir}: already trained with this config (train_summary.json); nothing to do")
        if cfg.export.after_train and main:
            export(cfg, run_dir, backend)
        return True
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        print(f"# resolved config (saved to {run_dir / 'config.yaml'})\n{config_yaml}")
        (run_dir / "config.yaml").write_text(config_yaml, encoding="utf-8")
    return False


def run_trainer(trainer: Any, stop: Any, run_dir: Path, resume_mode: str) -> float | None:
    """Train (resumed per `train.resume`) with the SIGTERM handler installed; the seconds it
    took, or None when a signal stopped it (the checkpoint is kept for the rerun)."""
    resume = resolve_resume(run_dir, resume_mode)
    print(f"resume: {resume or 'fresh start'}")
    started = time.time()
    stop.install()
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    finally:
        stop.restore()
    if stop.signal is not None:
        print(f"stopped at step {trainer.state.global_step}; rerun the same command to resume")
        return None
    return time.time() - started


def export(cfg: Config, run_dir: Path, backend: str) -> Path:
    """Export after training: in a child process when the backend is unsloth (its class-level
    patches break `generate` on the freshly loaded merged model in this process)."""
    from trainer.export import export_in_child, export_run

    e = cfg.export
    if backend == "unsloth":
        return export_in_child(run_dir, e.out_dir, e.push_to_hub, e.private)
    return export_run(run_dir, e.out_dir, e.push_to_hub, e.private)


def sample_only_warning(cfg: Config) -> str | None:
    """A warning when a real (non-tiny) base would be trained only on the bundled sample file."""
    from trainer.gguf_import import is_bundled
    from trainer.tiny import _MARKER
    from tutor.paths import SAMPLE_DIR

    sample = (SAMPLE_DIR / "dialogues.jsonl").resolve()
    files = [resolve_path(f) for f in cfg.data.train_files]
    if not files or any(not f.exists() or f.resolve() != sample for f in files):
        return None
    if (Path(cfg.model.name) / _MARKER).is_file() or is_bundled(Path(cfg.model.name)):
        return None  # the offline demo models: the sample is what they are meant to learn
    return (
        f"warning: training {cfg.model.name} only on the bundled sample ({sample.name}, a few "
        "dozen dialogues): pass your data with data.train_files=[...] (see docs/training.md)"
    )


def finished(run_dir: Path, config_yaml: str) -> bool:
    """The run ended (summary and adapter saved) with this exact resolved config: rerunning the
    command must not "resume" from its last checkpoint and overwrite the summary."""
    saved = run_dir / "config.yaml"
    return (
        saved.exists()
        and saved.read_text(encoding="utf-8") == config_yaml
        and (run_dir / "train_summary.json").exists()
        and (run_dir / "adapter" / "adapter_config.json").exists()
    )


def resolve_base(name: str, run_dir: Path) -> str:
    """`tiny` -> build the offline tiny model under `<run_dir>/base`; `smollm2` -> the bundled
    SmolLM2-135M-Instruct, imported once into the model cache; a local dir -> its path."""
    if name == TINY:
        from trainer.tiny import build_tiny_model

        return str(build_tiny_model(run_dir / "base").resolve())
    from trainer.gguf_import import BUNDLED, bundled_model_dir

    if name == BUNDLED:
        return str(bundled_model_dir().resolve())
    p = resolve_path(name)
    return str(p.resolve()) if p.exists() else name


def record_base(model: Any, base: str, revision: str | None) -> None:
    """Name the configured base in every adapter config (`adapter_config.json`, the Hub card):
    Unsloth may load from a mirror (e.g. its pre-quantised `unsloth/...-bnb-4bit` repos)."""
    for peft_config in getattr(model, "peft_config", {}).values():
        peft_config.base_model_name_or_path = base
        peft_config.revision = revision


# Unused special tokens that can serve as pad when a base ships pad == eos (SmolLM2, Llama 3, ...).
PAD_CANDIDATES = ("<|endoftext|>", "<|finetune_right_pad_id|>", "<|pad|>", "<pad>", "[PAD]")


def check_special_tokens(tokenizer: Any) -> None:
    """eos must end an assistant turn (`<|im_end|>` in ChatML) and pad must differ from it, or
    masking pads would also mask every end-of-turn and the model would never learn to stop.
    A base that ships pad == eos (or no pad) gets a distinct existing token as pad, said in one
    line; the tokenizer saved with the adapter and the export carries it."""
    template = tokenizer.chat_template or ""
    if "<|im_end|>" in template and tokenizer.eos_token != "<|im_end|>":
        print(
            f"tokenizer: eos {tokenizer.eos_token!r} -> '<|im_end|>' (the template's end of turn)"
        )
        tokenizer.eos_token = "<|im_end|>"
    if tokenizer.eos_token is None:
        raise TrainError("tokenizer has no eos token (Qwen2.5 and SmolLM2: <|im_end|>)")
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        was = tokenizer.pad_token
        tokenizer.pad_token = distinct_pad(tokenizer)
        print(
            f"tokenizer: pad {was!r} -> {tokenizer.pad_token!r} (pad must differ from eos "
            f"{tokenizer.eos_token!r}, whose labels are kept)"
        )


def distinct_pad(tokenizer: Any) -> str:
    """The first existing special token that can pad: not eos, bos or a chat-template marker."""
    vocab = tokenizer.get_vocab()
    taken = {tokenizer.eos_token, tokenizer.bos_token, "<|im_start|>", "<|im_end|>"}
    for token in (*PAD_CANDIDATES, tokenizer.unk_token):
        if token and token in vocab and token not in taken:
            return token
    raise TrainError(
        f"tokenizer pad == eos ({tokenizer.eos_token!r}) and no unused special token to pad "
        f"with (looked for {', '.join(PAD_CANDIDATES)} and unk): add a pad token to the base"
    )


def build_datasets(cfg: Config, tokenizer: Any) -> dict[str, Any]:
    """Read, split, tokenise and (optionally) pack; returns train/eval examples and stats."""
    from tutor.prompts import TUTOR_SYSTEM_PROMPT

    d = cfg.data
    files = [resolve_path(f) for f in d.train_files]
    convs, report = load_conversations(
        files, d.system_prompt or TUTOR_SYSTEM_PROMPT, d.format, d.max_exchanges, d.dedupe
    )
    if report.invalid:
        where, reason = report.invalid[0]
        print(f"data: skipped {len(report.invalid)} invalid rows (first: {where}: {reason})")
    if not convs:
        raise TrainError(f"data.train_files: no valid conversations in {[str(f) for f in files]}")
    train_convs, eval_convs = split_eval(convs, d.eval_split, cfg.train.seed)
    train_ex, stats = encode_all(tokenizer, train_convs, d.max_seq_len)
    eval_ex, _ = encode_all(tokenizer, eval_convs, d.max_seq_len)
    if d.packing:
        train_ex = pack_examples(train_ex, d.max_seq_len)
        eval_ex = pack_examples(eval_ex, d.max_seq_len)
        stats.bins = len(train_ex)
        stats.real_token_share = stats.tokens / max(1, len(train_ex) * d.max_seq_len)
    else:  # padded batches, in dataset order (already shuffled by split_eval)
        stats.real_token_share = padded_share(
            [len(ex) for ex in train_ex], cfg.train.per_device_batch_size
        )
    systems = Counter(m[0]["content"] for m in train_convs)
    return {
        "train": train_ex,
        "eval": eval_ex,
        "stats": stats,
        "system_prompt": systems.most_common(1)[0][0],
        "conversations": {"train": len(train_convs), "eval": len(eval_convs)},
        "data_report": report.summary(),
        "files": [str(f) for f in files],
    }


def training_arguments(cfg: Config, run_dir: Path, cuda: bool, has_eval: bool) -> dict[str, Any]:
    """The `TrainingArguments` both stages share (TRL's DPOConfig takes them too), from `train`;
    with WANDB_API_KEY set, W&B is checked and its project and entity set from `wandb`."""
    import torch

    t = cfg.train
    dtype = torch_dtype(cfg.model.compute_dtype, cuda)
    wandb = bool(os.environ.get("WANDB_API_KEY"))
    if wandb and importlib.util.find_spec("wandb") is None:
        raise TrainError("WANDB_API_KEY is set but wandb is not installed (pip install wandb)")
    if wandb:
        os.environ.setdefault("WANDB_PROJECT", cfg.wandb.project)
        if cfg.wandb.entity:
            os.environ.setdefault("WANDB_ENTITY", cfg.wandb.entity)
    return dict(
        output_dir=str(run_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.per_device_batch_size,
        per_device_eval_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.grad_accum,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float < 1 is a ratio of total steps
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=t.optim,
        bf16=cuda and dtype == torch.bfloat16,
        fp16=cuda and dtype == torch.float16,
        logging_steps=t.logging_steps,
        eval_strategy=("epoch" if t.eval_steps < 0 else "steps") if has_eval else "no",
        eval_steps=t.eval_steps if t.eval_steps > 0 else None,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        report_to=["wandb"] if wandb else "none",
        run_name=cfg.wandb.run_name or run_dir.name,
        include_num_input_tokens_seen="non_padding",
        use_cpu=not cuda,
    )


def make_trainer(
    cfg, model, tokenizer, data, run_dir, config_yaml, seq_lengths_key, trainer_cls=None,
    collator=None, **trainer_kwargs,
):  # fmt: skip
    """A `transformers.Trainer` (or `trainer_cls`, e.g. the DPO stage's) on pre-tokenised
    examples, with our callbacks attached."""
    import torch
    from transformers import Trainer, TrainingArguments

    from trainer.callbacks import CheckpointMarker, MetricsLogger, StopOnSignal

    cuda = torch.cuda.is_available()
    has_eval = bool(data["eval"]) and cfg.train.eval_steps != 0
    args = TrainingArguments(
        **training_arguments(cfg, run_dir, cuda, has_eval),
        prediction_loss_only=True,  # eval needs the loss only; never keep eval logits
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
    )
    stop = StopOnSignal()
    trainer = (trainer_cls or Trainer)(
        model=model,
        args=args,
        train_dataset=data["train"],
        eval_dataset=data["eval"] if has_eval else None,
        data_collator=collator
        or Collator(tokenizer.pad_token_id, cfg.data.packing, seq_lengths_key),
        processing_class=tokenizer,
        callbacks=[CheckpointMarker(run_dir, config_yaml), stop],
        **trainer_kwargs,
    )
    # First, so the console, W&B and metrics.jsonl all see the fields it adds.
    trainer.callback_handler.callbacks.insert(
        0, MetricsLogger(run_dir, trainer.is_world_process_zero())
    )
    return trainer, stop


def finish(cfg, trainer, tokenizer, data, run_dir: Path, backend: str, seconds: float) -> None:
    """Save the adapter and `train_summary.json` (read by export and the model card)."""
    from trainer.callbacks import peak_memory_gb

    adapter = run_dir / "adapter"
    record_base(trainer.model, cfg.model.name, cfg.model.revision)
    trainer.model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    (adapter / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    speed = [h for h in history if "train_tokens_per_second" in h]
    stats = data["stats"]
    summary = {
        "backend": backend,
        "base_model": cfg.model.name,
        "system_prompt": data["system_prompt"],
        "data": {
            "files": data["files"],
            "conversations": data["conversations"],
            "tokens": stats.tokens,
            "trained_tokens": stats.label_tokens,
            "truncated": stats.truncated,
            "dropped": stats.dropped,
            "packed_bins": stats.bins,
            "real_token_share": round(stats.real_token_share, 4),
        },
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "eval_loss": evals[-1] if evals else None,
        "wall_seconds": round(seconds, 1),
        "tokens_per_second": speed[-1]["train_tokens_per_second"] if speed else None,
        "peak_mem_gb": round(peak_memory_gb(), 3),
    }
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"adapter saved to {adapter}; summary: {json.dumps(summary['data'])}")
    print(
        f"final loss {summary['final_loss']}, eval loss {summary['eval_loss']}, "
        f"{summary['tokens_per_second']} tokens/s, {summary['wall_seconds']} s"
    )
