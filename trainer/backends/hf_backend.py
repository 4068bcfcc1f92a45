"""The transformers + peft backend: bitsandbytes 4-bit (QLoRA) on CUDA, full precision on CPU.
The loss is the chunked cross-entropy of `trainer.loss` (never the full logits) unless
`train.loss_chunk_tokens` is 0; packed rows get attention per conversation (`trainer.attention`)
when the attention is sdpa.

Runs under `accelerate launch` / `torchrun` too: each process loads its copy onto its local GPU.
"""

from __future__ import annotations

import os
from typing import Any

from trainer.attention import use_packed_sdpa
from trainer.backends import torch_dtype
from trainer.config import Config
from trainer.loss import use_chunked_loss


def load_model(cfg: Config, base: str) -> Any:
    """Load `base` and wrap it with a LoRA adapter per `cfg.lora`."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    cuda = torch.cuda.is_available()
    dtype = torch_dtype(cfg.model.compute_dtype, cuda)
    quant = None
    if cfg.model.load_in_4bit and cuda:
        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.model.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=cfg.model.bnb_4bit_use_double_quant,
            bnb_4bit_compute_dtype=dtype,
        )
    elif cfg.model.load_in_4bit:
        print("hf backend: load_in_4bit needs CUDA; loading full precision weights on CPU")
    model = AutoModelForCausalLM.from_pretrained(
        base,
        revision=cfg.model.revision,
        dtype=dtype,
        quantization_config=quant,
        attn_implementation=cfg.model.attn_implementation,
        device_map={"": int(os.environ.get("LOCAL_RANK", 0))} if cuda else None,
    )
    model.config.use_cache = False  # the cache is useless in training and fights checkpointing
    if cfg.data.packing and cfg.model.attn_implementation == "sdpa":
        use_packed_sdpa(model)  # attention per conversation inside a packed row
    gc = cfg.model.gradient_checkpointing
    if quant is not None:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gc,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif gc:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    use_chunked_loss(model, cfg.train.loss_chunk_tokens)
    return model
