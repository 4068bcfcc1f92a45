"""Model backends: `hf` (transformers + peft, any device) and `unsloth` (CUDA only).

Both return a PEFT-wrapped model ready for `transformers.Trainer`; tokenisation, masks, packing
and the training loop are shared. `choose_backend("auto")` says which one it picked and why.
"""

from __future__ import annotations

import importlib.util

BACKENDS = ("hf", "unsloth")


def choose_backend(requested: str) -> tuple[str, str]:
    """(backend, reason). `auto` = unsloth when CUDA and unsloth are both present, else hf."""
    import torch

    cuda = torch.cuda.is_available()
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if requested == "hf":
        return "hf", "requested in the config"
    if requested == "unsloth":
        if not cuda:
            raise ValueError("train.backend=unsloth needs a CUDA GPU (none found); use hf")
        if not has_unsloth:
            raise ValueError("train.backend=unsloth but unsloth is not installed (pip '.[gpu]')")
        return "unsloth", "requested in the config"
    if requested != "auto":
        raise ValueError(
            f"train.backend: unknown {requested!r} (allowed: auto, {', '.join(BACKENDS)})"
        )
    if cuda and has_unsloth:
        return "unsloth", "auto: CUDA and unsloth are available"
    if cuda:
        return "hf", "auto: CUDA is available but unsloth is not installed"
    return "hf", "auto: no CUDA device (unsloth needs a GPU)"


def torch_dtype(name: str, cuda: bool):
    """`auto` = bfloat16 on a GPU that supports it, float16 on older GPUs, float32 on CPU."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    if not cuda:
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
