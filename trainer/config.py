"""Typed training configuration: a YAML preset, then environment overrides, then CLI overrides.

    cfg = load_config("configs/tiny-cpu.yaml", ["train.epochs=2", "lora.r=8"])

Precedence (later wins):
1. the YAML preset (`configs/*.yaml`), sections `model`, `lora`, `data`, `train`, `dpo`, `wandb`,
   `export` (`dpo` is read only when `train.stage` is dpo);
2. environment variables `SOCRATIC_<SECTION>__<KEY>=value` (double underscore between section and
   key, case-insensitive), e.g. `SOCRATIC_TRAIN__OUTPUT_DIR=/workspace/runs/a`. Variables whose
   section is not one of the seven above are ignored (other stages use the same prefix);
3. CLI `section.key=value` pairs.

Values are parsed as YAML scalars (`1e-4`, `true`, `null`, `[q_proj, v_proj]`). Unknown keys and
invalid values raise `ConfigError` with a one-line message naming the key and what is allowed.
Importing this module never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tutor.errors import UserError
from tutor.pairs import Kind

ENV_PREFIX = "SOCRATIC_"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# GGUF files `export.gguf` can ask for: llama.cpp's converter writes the first three, its
# quantiser the others (trainer.gguf_export).
GGUFType = Literal["f16", "bf16", "f32", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"]


class TrainError(UserError, ValueError):
    """A problem the user can fix (config, data, tokenizer, checkpoint); a one-line message."""


class ConfigError(TrainError):
    """A bad preset, override or value; the message is one line naming the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    name: str = Field(
        "tiny", description="HF repo id or local dir; `tiny` builds the offline tiny model"
    )
    revision: str | None = None
    load_in_4bit: bool = Field(False, description="QLoRA: NF4 weights via bitsandbytes (CUDA)")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_use_double_quant: bool = True
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    gradient_checkpointing: bool = False


class LoraSection(_Section):
    r: int = Field(16, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(LORA_TARGETS))


class DataConfig(_Section):
    train_files: list[str] = Field(default_factory=lambda: ["data/sample/dialogues.jsonl"])
    format: str | None = Field(None, description="importer format; null = native, auto = detect")
    system_prompt: str | None = Field(None, description="null = the project's tutor prompt")
    eval_split: float = Field(0.05, ge=0.0, lt=1.0, description="share held out for eval loss")
    max_seq_len: int = Field(2048, ge=16, description="tokens per sequence / packed bin")
    packing: bool = True
    # None: any length (max_seq_len truncates, and counts it)
    max_exchanges: int | None = Field(None, ge=1)
    dedupe: bool = True


class TrainSection(_Section):
    stage: Literal["sft", "dpo"] = Field(
        "sft", description="sft: imitate conversations; dpo: preference pairs from an SFT run"
    )
    output_dir: str = "runs/tiny"
    backend: Literal["auto", "hf", "unsloth"] = "auto"
    epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(-1, description="optimizer steps; -1 = from epochs")
    learning_rate: float = Field(2e-4, gt=0)
    per_device_batch_size: int = Field(2, ge=1)
    grad_accum: int = Field(8, ge=1)
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0)
    optim: str = "adamw_torch"
    loss_chunk_tokens: int = Field(
        256,
        ge=0,
        description="hf backend: labelled tokens per LM-head chunk of the loss (never the full "
        "logits); 0 = the model's own loss over full logits",
    )
    logging_steps: int = Field(1, ge=1)
    eval_steps: int = Field(
        -1, ge=-1, description="eval every N steps; -1 = once per epoch, 0 = off"
    )
    save_steps: int = Field(50, ge=1)
    save_total_limit: int = Field(3, ge=1)
    resume: str = Field("auto", description="auto | never | path to a checkpoint dir")
    seed: int = 42


class DpoConfig(_Section):
    """The preference stage (`train.stage: dpo`, trainer/dpo.py): `data.train_files` hold pairs."""

    sft_run: str | None = Field(
        None,
        description="SFT run dir (adapter/ + config.yaml) or adapter dir to start from; its "
        "model and lora sections are used, and it is the frozen reference",
    )
    loss: Literal["sigmoid", "ipo"] = Field(
        "sigmoid", description="sigmoid: DPO (Rafailov et al.); ipo: squared, on mean log-probs"
    )
    beta: float = Field(0.1, gt=0, description="strength of the pull toward the reference")
    sft_weight: float = Field(
        0.0, ge=0, description="weight of the mean NLL of the chosen reply added to the loss"
    )
    max_pairs: int | None = Field(
        None, ge=1, description="use N pairs drawn with train.seed; null = all"
    )
    kinds: list[Kind] | None = Field(
        None,
        description="train only on pairs of these kinds (tutor.pairs.KINDS); null = all kinds",
    )


class WandbConfig(_Section):
    project: str = "socratic-tutor"
    run_name: str | None = None
    entity: str | None = None


class ExportConfig(_Section):
    after_train: bool = False
    out_dir: str | None = Field(None, description="null = <output_dir>/export")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    push_to_hub: str | None = None
    private: bool = False
    served_name: str = "socratic-tutor"
    verify_prompt: str = "Why do heavier objects not fall faster than lighter ones?"
    verify_max_new_tokens: int = Field(128, ge=1)
    allow_unverified: bool = Field(
        False, description="export (and push) even when verify generation does not stop"
    )
    gguf: list[GGUFType] = Field(
        default_factory=list, description="GGUF files beside the export, e.g. [f16, q4_k_m]"
    )


class Config(_Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraSection = Field(default_factory=LoraSection)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainSection = Field(default_factory=TrainSection)
    dpo: DpoConfig = Field(default_factory=DpoConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation for name, field in Config.model_fields.items()
}


def load_config(
    path: str | Path | None,
    overrides: list[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Preset YAML (None = defaults) -> `SOCRATIC_SECTION__KEY` env -> `section.key=value` list."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"{p}: cannot read config ({e.strerror})") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML ({str(e).splitlines()[0]})") from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of sections, got {type(loaded).__name__}")
        data = loaded or {}
        for section, body in data.items():
            _check_key(section, None, source=str(p))
            if body is not None and not isinstance(body, dict):
                raise ConfigError(f"{p}: section '{section}' must be a mapping")
            for key in body or {}:
                _check_key(section, key, source=str(p))
    for key, value in env_overrides(os.environ if env is None else env):
        _set(data, key, value, source=f"env {ENV_PREFIX}{key.replace('.', '__').upper()}")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override '{item}': expected section.key=value")
        _set(data, key.strip(), value, source="override")
    return validate(data)


def env_overrides(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(`section.key`, raw value) for every `SOCRATIC_<SECTION>__<KEY>` whose section is ours."""
    out = []
    for name, value in sorted(env.items()):
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section in SECTIONS:
            out.append((f"{section}.{key}", value))
    return out


def validate(data: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{key}: {err['msg']} (got {err.get('input')!r})") from None


def _check_key(section: str, key: str | None, source: str) -> None:
    if section not in SECTIONS:
        raise ConfigError(f"{source}: unknown section '{section}' (allowed: {', '.join(SECTIONS)})")
    fields = SECTIONS[section].model_fields
    if key is not None and key not in fields:
        raise ConfigError(
            f"{source}: unknown key '{section}.{key}' (allowed: {', '.join(sorted(fields))})"
        )


def _set(data: dict[str, Any], dotted: str, raw: str, source: str) -> None:
    section, _, key = dotted.partition(".")
    if not key or "." in key:
        raise ConfigError(f"{source}: key '{dotted}' must be section.key")
    _check_key(section, key, source=f"{source} '{dotted}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if SECTIONS[section].model_fields[key].annotation in (str, str | None) and value is not None:
        value = raw  # keep strings verbatim ("007" stays "007")
    data.setdefault(section, {})
    if data[section] is None:
        data[section] = {}
    data[section][key] = value


def resolve_path(path: str | Path, base: Path | None = None) -> Path:
    """A relative data/config path resolves against the repo root when not found from cwd."""
    from tutor.paths import REPO_ROOT

    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    candidate = (base or REPO_ROOT) / p
    return candidate if candidate.exists() else p
