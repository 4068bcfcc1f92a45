"""The Unsloth backend (CUDA only): 4-bit base via `FastLanguageModel`, LoRA with Unsloth's
gradient checkpointing. `import unsloth` patches transformers/trl/peft, so it must happen before
any of them is imported; `trainer.train` calls `load_model` before importing transformers.

The configured repo is loaded as named (`use_exact_model_name=True`): by default Unsloth swaps
e.g. `Qwen/Qwen2.5-7B-Instruct` for its pre-quantised mirror `unsloth/Qwen2.5-7B-Instruct-unsloth-
bnb-4bit` and drops `model.revision`, while the tokenizer and the export read the configured repo.
Unsloth quantises on load with NF4 and double quantisation, whatever the config says, so any other
`bnb_4bit_*` setting is refused here rather than silently ignored.
"""

from __future__ import annotations

from typing import Any

from trainer.config import Config, ConfigError

# Unsloth's attention reads packed-conversation lengths from this batch key (cu_seqlens).
SEQ_LENGTHS_KEY = "packed_seq_lengths"


def check_quantisation(cfg: Config) -> None:
    """Unsloth's 4-bit load is NF4 + double quantisation (its BitsAndBytesConfig is fixed)."""
    m = cfg.model
    if m.load_in_4bit and (m.bnb_4bit_quant_type != "nf4" or not m.bnb_4bit_use_double_quant):
        raise ConfigError(
            f"model.bnb_4bit_quant_type={m.bnb_4bit_quant_type}, "
            f"model.bnb_4bit_use_double_quant={m.bnb_4bit_use_double_quant}: the unsloth backend "
            "always loads 4-bit as nf4 with double quantisation; set those, or train.backend=hf"
        )


def load_model(cfg: Config, base: str) -> Any:
    """Load `base` with Unsloth and wrap it with a LoRA adapter per `cfg.lora`."""
    check_quantisation(cfg)
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
        use_exact_model_name=True,
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
        # A packed row holds per_device_batch_size bins of max_seq_len tokens. Unsloth truncates
        # rows longer than max_seq_length (with a warning) unless the batch carries
        # `packed_seq_lengths`, which the collator always sends and which alone lifts the limit;
        # the mark lifts it on the model too, so a packed row is never cut if the key went missing.
        from unsloth.utils.packing import mark_allow_overlength

        mark_allow_overlength(model)
    return model
