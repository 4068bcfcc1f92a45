"""The preference stage (`train.stage: dpo`): DPO / IPO on pairs, starting from an SFT run.

    socratic train --config configs/smollm2-135m-dpo-cpu.yaml
    socratic train --config configs/qwen2.5-7b-dpo-qlora.yaml dpo.sft_run=/workspace/runs/qwen7b

Reads top to bottom: take the SFT run's model and LoRA settings, load the base with a LoRA
adapter holding the SFT weights (trainable: the policy), tokenise the pairs with the one loss
mask (trainer.dpo_data), score every pair once with that same model before the first step, which
is the frozen SFT model (the reference: saved to `reference_logps.json`, so a resume reads it
instead of recomputing, and no second model or disabled-adapter pass is kept in memory), then
train with `transformers.Trainer` and the project's loss (trainer.preference_loss) on the
chunked LM head. Checkpoints, resume, SIGTERM, W&B, metrics.jsonl, loss.png, the adapter and
export are the SFT stage's (trainer.train); `train_summary.json` records both stages, so the
export's `tutor.json` does too. The unsloth backend runs TRL's DPOTrainer (trainer.dpo_unsloth).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from trainer.backends import choose_backend
from trainer.checkpoints import check_resume
from trainer.config import Config, ConfigError, TrainError, load_config, resolve_path
from trainer.dpo_common import load_adapter_weights, write_summary
from trainer.dpo_data import (
    PairCollator,
    encode_pairs,
    pairs_digest,
    read_pairs,
    select_pairs,
    sequence_logps,
)
from trainer.train import (
    check_special_tokens,
    export,
    make_trainer,
    record_base,
    run_trainer,
    start_run,
)

REFERENCE_FILE = "reference_logps.json"


def resolve_sft(cfg: Config) -> tuple[Path, Config, dict[str, Any]]:
    """(adapter dir, the SFT run's config, its train_summary) from `dpo.sft_run`: a run dir
    (adapter/ + config.yaml) or an adapter dir holding its config.yaml (export/adapter too)."""
    if not cfg.dpo.sft_run:
        raise ConfigError("dpo.sft_run: train.stage=dpo needs the SFT run dir to start from")
    path = resolve_path(cfg.dpo.sft_run)
    adapter = path / "adapter" if (path / "adapter" / "adapter_config.json").is_file() else path
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(
            f"dpo.sft_run: {path} holds no trained adapter (adapter/adapter_config.json); "
            "run the SFT stage to the end first"
        )
    config = next((p for p in (path / "config.yaml", adapter / "config.yaml") if p.is_file()), None)
    if config is None:
        raise ConfigError(f"dpo.sft_run: {path} has no config.yaml (written by socratic train)")
    sft_cfg = load_config(config, env={})
    summary_file = path / "train_summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return adapter, sft_cfg, summary


def stage_config(cfg: Config, sft_cfg: Config) -> Config:
    """The DPO run's config: model and lora are the SFT run's (the adapter must fit them)."""
    cfg = cfg.model_copy(deep=True)
    cfg.model = sft_cfg.model.model_copy(deep=True)
    cfg.lora = sft_cfg.lora.model_copy(deep=True)
    return cfg


def train_dpo(cfg: Config) -> Path:
    """Train the preference stage per `cfg`; returns the run dir (also when stopped by SIGTERM)."""
    run_dir = Path(cfg.train.output_dir)
    main = int(os.environ.get("RANK", "0")) == 0
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainError(
            "train.stage=dpo runs in one process (its loss calls the model's backbone, which DDP "
            "does not wrap): start it with socratic train, not accelerate launch / torchrun"
        )
    check_resume(cfg.train.resume)
    backend, why = choose_backend(cfg.train.backend)
    sft_adapter, sft_cfg, sft_summary = resolve_sft(cfg)
    cfg = stage_config(cfg, sft_cfg)
    config_yaml = cfg.to_yaml()
    if start_run(cfg, run_dir, config_yaml, backend, main):
        return run_dir
    print(f"backend: {backend} ({why}); start and reference: the SFT adapter {sft_adapter}")
    if backend == "unsloth":
        from trainer.dpo_unsloth import train_dpo_unsloth

        return train_dpo_unsloth(cfg, run_dir, sft_adapter, sft_summary, config_yaml)

    from trainer.backends.hf_backend import load_model

    load_cfg = cfg.model_copy(deep=True)
    load_cfg.data.packing = False  # pairs are padded batches: no per-conversation attention
    model = load_model(load_cfg, cfg.model.name)
    load_adapter_weights(model, sft_adapter)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(sft_adapter)  # carries the SFT run's distinct pad
    check_special_tokens(tokenizer)
    data = build_pairs(cfg, tokenizer, sft_summary.get("system_prompt"))
    print(f"data: {data['stats'].line()}; eval {len(data['eval'])} pairs")
    chunk = cfg.train.loss_chunk_tokens or 1 << 30  # 0 = one chunk per reply
    attach_reference(model, data, run_dir, _sha256(sft_adapter / "adapter_model.safetensors"),
                     cfg.train.per_device_batch_size, chunk, tokenizer.pad_token_id, main)  # fmt: skip

    from trainer.dpo_trainer import PreferenceTrainer

    trainer, stop = make_trainer(
        cfg, model, tokenizer, data, run_dir, config_yaml, None,
        trainer_cls=PreferenceTrainer, collator=PairCollator(tokenizer.pad_token_id),
    )  # fmt: skip
    trainer.setup_preference(cfg, chunk)
    seconds = run_trainer(trainer, stop, run_dir, cfg.train.resume)
    if seconds is None:
        return run_dir
    if main:
        finish_dpo(cfg, trainer, tokenizer, data, run_dir, backend, sft_summary, seconds)
    if cfg.export.after_train and main:
        export(cfg, run_dir, backend)
    return run_dir


def build_pairs(cfg: Config, tokenizer: Any, system_prompt: str | None) -> dict[str, Any]:
    """Read, validate, split and tokenise the pairs of `data.train_files`."""
    from trainer.data import split_eval
    from tutor.prompts import TUTOR_SYSTEM_PROMPT

    d = cfg.data
    files = [resolve_path(f) for f in d.train_files]
    pairs = select_pairs(read_pairs(files), cfg.dpo.max_pairs, cfg.train.seed, cfg.dpo.kinds)
    if not pairs:
        raise TrainError(
            f"data.train_files: no valid preference pairs in {[str(f) for f in files]}"
        )
    train_pairs, eval_pairs = split_eval(pairs, d.eval_split, cfg.train.seed)
    system = d.system_prompt or system_prompt or TUTOR_SYSTEM_PROMPT
    train_ex, stats = encode_pairs(tokenizer, train_pairs, system, d.max_seq_len)
    eval_ex, _ = encode_pairs(tokenizer, eval_pairs, system, d.max_seq_len)
    if not train_ex:
        raise TrainError(f"data.max_seq_len={d.max_seq_len}: every pair is longer; raise it")
    return {"train": train_ex, "eval": eval_ex, "stats": stats, "system_prompt": system,
            "files": [str(f) for f in files]}  # fmt: skip


def attach_reference(model, data, run_dir: Path, adapter_sha: str, batch: int, chunk: int,
                     pad_id: int, main: bool) -> None:  # fmt: skip
    """Set every example's `reference` log-probs: read from `reference_logps.json` when it was
    computed for these exact tokens and this SFT adapter, else scored now with the policy as it
    is before any step (the SFT model, no gradients) and saved."""
    import torch

    key = f"{adapter_sha}:{pairs_digest(data['train'])}:{pairs_digest(data['eval'])}"
    path = run_dir / REFERENCE_FILE
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if saved.get("key") != key:
        t0 = time.time()
        was_training = model.training
        model.eval()
        collate = PairCollator(pad_id)
        device = next(model.parameters()).device
        saved = {"key": key}
        with torch.no_grad():
            for split in ("train", "eval"):
                rows = []
                for i in range(0, len(data[split]), batch):
                    b = {k: v.to(device) for k, v in collate(data[split][i : i + batch]).items()}
                    logps, _ = sequence_logps(model, b, chunk)
                    n = logps.shape[0] // 2
                    rows += torch.stack([logps[:n], logps[n:]], 1).tolist()
                saved[split] = rows
        model.train(was_training)
        if main:
            path.write_text(json.dumps(saved), encoding="utf-8")
        print(f"reference: scored {len(saved['train']) + len(saved['eval'])} pairs with the SFT "
              f"model in {time.time() - t0:.1f} s -> {path}")  # fmt: skip
    else:
        print(f"reference: read {path} (same SFT adapter and pairs)")
    for split in ("train", "eval"):
        for ex, ref in zip(data[split], saved[split], strict=True):
            ex.reference = ref


def finish_dpo(cfg, trainer, tokenizer, data, run_dir: Path, backend: str, sft_summary: dict,
               seconds: float) -> None:  # fmt: skip
    """Save the adapter and `train_summary.json` (this stage, with the SFT stage's inside)."""
    from trainer.callbacks import peak_memory_gb

    adapter = run_dir / "adapter"
    record_base(trainer.model, cfg.model.name, cfg.model.revision)
    trainer.model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    (adapter / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    write_summary(cfg, trainer.state, data, run_dir, backend, sft_summary, seconds,
                  peak_memory_gb())  # fmt: skip


def _sha256(path: Path) -> str:
    from trainer.export import _sha256 as sha

    return sha(path)
