"""The Unsloth backend (CUDA only): 4-bit base via `FastLanguageModel`, LoRA with Unsloth's
gradient checkpointing. `import unsloth` patches transformers/trl/peft, so it must happen before
any of them is imported; `trainer.train` calls `load_model` before importing transformers.
"""

from __future__ import annotations

from typing import Any

from trainer.config import Config

# Unsloth's attention reads packed-conversation lengths from this batch key (cu_seqlens).
SEQ_LENGTHS_KEY = "packed_seq_lengths"


def load_model(cfg: Config, base: str) -> Any:
    """Load `base` with Unsloth and wrap it with a LoRA adapter per `cfg.lora`."""
    import unsloth  # noqa: F401  (first: patches transformers before it is imported)
    from unsloth import FastLanguageModel

    from trainer.backends import torch_dtype

    dtype = (
        None if cfg.model.compute_dtype == "auto" else torch_dtype(cfg.model.compute_dtype, True)
    )
    model, _tokenizer = FastLanguageModel.from_pretrained(
        model_name=base,
        max_seq_length=cfg.data.max_seq_len,
        dtype=dtype,
        load_in_4bit=cfg.model.load_in_4bit,
        revision=cfg.model.revision,
        use_gradient_checkpointing="unsloth" if cfg.model.gradient_checkpointing else False,
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        bias="none",
        use_gradient_checkpointing="unsloth" if cfg.model.gradient_checkpointing else False,
        random_state=cfg.train.seed,
    )
    if cfg.data.packing:
        # A packed row holds per_device_batch_size bins of max_seq_len tokens each; without this
        # mark Unsloth refuses rows longer than max_seq_length.
        from unsloth.utils.packing import mark_allow_overlength

        mark_allow_overlength(model)
    return model
