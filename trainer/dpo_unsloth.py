"""The preference stage on the unsloth backend (CUDA): Unsloth's documented `PatchDPOTrainer()` and
TRL's `DPOTrainer`, called from trainer.dpo.train_dpo when `train.backend` resolves to unsloth.

The model is Unsloth's 4-bit base with a LoRA adapter holding the SFT run's weights ("default",
trained). Given a PEFT model that already carries an adapter and no `ref_model`, TRL 1.x copies
that adapter as a frozen "ref" adapter and scores the reference with it: the reference is the SFT
model, as on the hf backend, without a second base in memory; `precompute_ref_log_probs` scores
it once before training. TRL renders and masks the pairs itself (prompt by the chat template's
generation prompt, completion = the rest, its `<|im_end|>` included); the tokenizer is the SFT
adapter's, with its pad distinct from eos. The loss list is `[dpo.loss]` plus `sft` weighted by
`dpo.sft_weight` when that is set (TRL's `loss_type` / `loss_weights`). Checkpoints, resume,
SIGTERM, metrics.jsonl, loss.png, the adapter (the "default" adapter only), train_summary.json
and the export in a child process are the SFT stage's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.config import Config, resolve_path


def dpo_args(cfg: Config, run_dir: Path, cuda: bool) -> Any:
    """TRL's `DPOConfig` from the project's config (same meaning as the SFT stage's arguments)."""
    from trl import DPOConfig

    from trainer.train import training_arguments

    d = cfg.dpo
    losses, weights = [d.loss], [1.0]
    if d.sft_weight:
        losses, weights = [d.loss, "sft"], [1.0, d.sft_weight]
    return DPOConfig(
        **training_arguments(cfg, run_dir, cuda, has_eval=cfg.train.eval_steps != 0),
        beta=d.beta,
        loss_type=losses,
        loss_weights=weights,
        max_length=cfg.data.max_seq_len,
        precompute_ref_log_probs=True,
    )


def pair_datasets(cfg: Config, pairs: list[dict], system_prompt: str) -> tuple[Any, Any]:
    """(train, eval) `datasets.Dataset`s of prompt (system prompt inserted) / chosen / rejected."""
    from datasets import Dataset

    from trainer.data import split_eval
    from tutor.schema import with_system_prompt

    rows = [
        {"prompt": with_system_prompt(list(p["prompt"]), system_prompt), "chosen": p["chosen"],
         "rejected": p["rejected"]}
        for p in pairs
    ]  # fmt: skip
    train, held = split_eval(rows, cfg.data.eval_split, cfg.train.seed)
    return Dataset.from_list(train), (Dataset.from_list(held) if held else None)


def train_dpo_unsloth(cfg: Config, run_dir: Path, sft_adapter: Path, sft_summary: dict,
                      config_yaml: str) -> Path:  # fmt: skip
    """TRL's DPOTrainer, patched by Unsloth, from the SFT adapter; returns the run dir."""
    from trainer.backends.unsloth_backend import load_model  # imports unsloth first

    load_cfg = cfg.model_copy(deep=True)
    load_cfg.data.packing = False
    model = load_model(load_cfg, cfg.model.name)
    from unsloth import PatchDPOTrainer

    PatchDPOTrainer()
    import torch
    from transformers import AutoTokenizer
    from trl import DPOTrainer

    from trainer.callbacks import CheckpointMarker, MetricsLogger, StopOnSignal
    from trainer.dpo_common import load_adapter_weights, write_summary
    from trainer.dpo_data import PairStats, read_pairs, select_pairs
    from trainer.train import check_special_tokens, export, record_base, run_trainer
    from tutor.prompts import TUTOR_SYSTEM_PROMPT

    load_adapter_weights(model, sft_adapter)
    tokenizer = AutoTokenizer.from_pretrained(sft_adapter)
    check_special_tokens(tokenizer)
    files = [resolve_path(f) for f in cfg.data.train_files]
    pairs = select_pairs(read_pairs(files), cfg.dpo.max_pairs, cfg.train.seed, cfg.dpo.kinds)
    system = cfg.data.system_prompt or sft_summary.get("system_prompt") or TUTOR_SYSTEM_PROMPT
    train_ds, eval_ds = pair_datasets(cfg, pairs, system)
    args = dpo_args(cfg, run_dir, torch.cuda.is_available())  # pad: the tokenizer's
    stop = StopOnSignal()
    trainer = DPOTrainer(
        model=model,
        ref_model=None,  # TRL copies the loaded SFT adapter as the frozen "ref" adapter
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds if args.eval_strategy != "no" else None,
        processing_class=tokenizer,
        callbacks=[CheckpointMarker(run_dir, config_yaml), stop],
    )
    trainer.callback_handler.callbacks.insert(0, MetricsLogger(run_dir, True))
    seconds = run_trainer(trainer, stop, run_dir, cfg.train.resume)
    if seconds is None:
        return run_dir
    from trainer.callbacks import peak_memory_gb

    adapter = run_dir / "adapter"
    record_base(trainer.model, cfg.model.name, cfg.model.revision)
    trainer.model.save_pretrained(adapter, selected_adapters=["default"])
    tokenizer.save_pretrained(adapter)
    (adapter / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    data = {"train": train_ds, "eval": eval_ds or [], "stats": PairStats(pairs=len(train_ds)),
            "system_prompt": system, "files": [str(f) for f in cfg.data.train_files]}  # fmt: skip
    write_summary(cfg, trainer.state, data, run_dir, "unsloth", sft_summary,
                  seconds, peak_memory_gb())  # fmt: skip
    if cfg.export.after_train:
        export(cfg, run_dir, "unsloth")
    return run_dir
