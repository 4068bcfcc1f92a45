"""Serving settings: read from environment variables once into typed, frozen objects: the
gateway's (`Settings`), the engine's (`EngineSpec`) and `socratic serve`'s own (`ServeOptions`).

    settings = Settings.from_env()                       # os.environ
    settings = Settings.from_env(env, engine_url="...")  # explicit values win over env
    spec = EngineSpec.from_env(model="runs/tiny-tutor/merged")

Every field has an environment variable (its upper-case name) and a default, read by one rule
(`tutor.flags.env_values`); the flags of `socratic serve` take their types and defaults from these
fields. docs/serving.md lists them all. Bad values fail at start-up with one line naming the
variable. Light imports only: the CLI reads this at start-up.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.vllm_flags import with_aliases
from tutor.errors import UserError
from tutor.flags import env_values
from tutor.prompts import TUTOR_SYSTEM_PROMPT

POLICIES = ("keep", "replace", "prepend")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ENGINES = ("auto", "vllm", "transformers")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # owner/name


class SettingsError(UserError, ValueError):
    """A setting has a bad value; the message names the environment variable."""

    exit_code = 1


class EngineError(UserError, RuntimeError):
    """The engine could not be started or died; the message ends with its last log lines."""

    exit_code = 1


@dataclass(frozen=True)
class Settings:
    """Everything the gateway and the serverless handler need to know, with units in the names."""

    engine_url: str = "http://127.0.0.1:8001"  # the OpenAI-compatible engine, no trailing /v1
    served_model_name: str = "socratic-tutor"  # the `model` clients see and may send
    upstream_model: str | None = None  # `model` sent to the engine; None = leave it out
    model_dir: str | None = None  # where tutor.json (the trained system prompt) may live
    system_prompt_policy: str = "keep"  # keep | replace | prepend (a client's own system message)
    system_prompt: str = TUTOR_SYSTEM_PROMPT
    api_keys: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    port_health: int = (
        0  # PORT_HEALTH: a second port with the same routes (RunPod LB /ping); 0 = none
    )
    max_body_bytes: int = 1_048_576
    max_messages: int = 64
    max_chars: int = 32_000  # summed over all message contents
    max_tokens_cap: int = 2048
    default_max_tokens: int = 512
    request_timeout_s: float = 120.0  # engine silent this long (before or between chunks): 504
    connect_timeout_s: float = 5.0
    max_concurrency_per_key: int = 16  # in-flight chat requests per API key (or per client host)
    rate_limit_per_minute: int = 0  # chat requests per key per minute; 0 = off
    retry_after_s: int = 5
    log_level: str = "INFO"  # DEBUG also logs message text
    web_ui: bool = True  # the student chat page at / (server/web.py); WEB_UI=0 turns it off

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every field from `env` (default os.environ); keyword overrides win."""
        env = with_aliases(os.environ if env is None else env)  # worker-vllm's names too
        values = env_values(cls, env, SettingsError, skip=overrides)
        values.update(overrides)
        if values.get("model_dir") is None and env.get("MODEL"):
            values["model_dir"] = env["MODEL"]  # the engine's model: tutor.json may sit in it
        cap = values.get("max_tokens_cap", cls.max_tokens_cap)
        if "default_max_tokens" not in values and cap < cls.default_max_tokens:
            values["default_max_tokens"] = cap  # a lower cap lowers the unset default with it
        if "system_prompt" not in values:  # unset or empty (.env.example's SYSTEM_PROMPT=)
            values["system_prompt"] = tutor_system_prompt(values.get("model_dir"))
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.system_prompt_policy not in POLICIES:
            raise SettingsError(
                f"SYSTEM_PROMPT_POLICY: {self.system_prompt_policy!r} is not one of {POLICIES}"
            )
        for name in ("max_body_bytes", "max_messages", "max_chars", "max_tokens_cap"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name.upper()}: must be >= 1, got {getattr(self, name)}")
        if not 1 <= self.default_max_tokens <= self.max_tokens_cap:
            raise SettingsError(
                f"DEFAULT_MAX_TOKENS: must be in 1..MAX_TOKENS_CAP ({self.max_tokens_cap}), "
                f"got {self.default_max_tokens}"
            )
        if self.request_timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise SettingsError("REQUEST_TIMEOUT_S and CONNECT_TIMEOUT_S must be > 0")
        if self.max_concurrency_per_key < 1 or self.rate_limit_per_minute < 0:
            raise SettingsError("MAX_CONCURRENCY_PER_KEY must be >= 1, RATE_LIMIT_PER_MINUTE >= 0")

    @property
    def debug(self) -> bool:
        return self.log_level.upper() == "DEBUG"


@dataclass(frozen=True)
class EngineSpec:
    """What to serve and how; every field is also an environment variable (upper-case name)."""

    model: str  # MODEL: merged model dir or hub id (the base model when LORA_ADAPTER is set)
    engine: str = "auto"  # ENGINE: auto | vllm | transformers
    served_model_name: str = "socratic-tutor"
    engine_host: str = "127.0.0.1"
    engine_port: int = 8001
    max_model_len: int | None = None  # tokens
    gpu_memory_utilization: float | None = None  # fraction of GPU memory for vLLM, 0..1
    tensor_parallel_size: int | None = None
    dtype: str | None = None  # auto | bfloat16 | float16 | float32
    quantization: str | None = None  # e.g. awq, gptq, bitsandbytes, fp8 (vLLM names)
    lora_adapter: str | None = None  # LoRA adapter dir served on top of MODEL (vLLM only)
    max_lora_rank: int | None = None  # default: the adapter's `r`; rounded up to vLLM's ranks
    vllm_extra_args: str = ""  # appended last, shell-split
    device: str = "auto"  # transformers engine: auto | cpu | cuda:0
    engine_start_timeout_s: float = 900.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> EngineSpec:
        """Read every field from `env` (default os.environ); keyword overrides (not None) win."""
        env = with_aliases(os.environ if env is None else env)  # MODEL_NAME -> MODEL, ...
        values = env_values(cls, env, EngineError, skip=overrides)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values.get("model"):
            raise EngineError("MODEL: no model given (a model directory or a hub id)")
        for name in ("model", "lora_adapter"):
            values[name] = local_dir(name.upper(), values.get(name))
        if values.get("engine", "auto") not in ENGINES:
            raise EngineError(f"ENGINE: {values['engine']!r} is not one of {ENGINES}")
        return cls(**values)

    @property
    def url(self) -> str:
        return f"http://{self.engine_host}:{self.engine_port}"

    @property
    def health_url(self) -> str:
        return self.url + "/health"


@dataclass(frozen=True)
class ServeOptions:
    """`socratic serve`'s own settings (server/launch.py's restart loop)."""

    engine_max_restarts: int = 2  # restarts of a dead engine before exiting 1


def local_dir(name: str, value: str | None) -> str | None:
    """`value` with ~ expanded when it reads as a local path (absolute, ./, ../, ~, or more parts
    than a hub id's owner/name); EngineError naming `name` when that directory is missing."""
    if not value or not (
        value.startswith(("/", "./", "../", "~"))
        or (os.sep in value and not HUB_ID.fullmatch(value))
    ):
        return value
    path = Path(value).expanduser()
    if not path.is_dir():
        raise EngineError(f"{name}: no such directory: {value}")
    return str(path)


def env_number(env: Mapping[str, str], name: str, default: int | float, minimum: float = 0) -> Any:
    """The number in env[name] (the type of `default`; unset or empty = `default`), at least
    `minimum`; SettingsError naming the variable otherwise."""
    raw = env.get(name, "")
    try:
        value = default if raw == "" else type(default)(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{name}: must be a number >= {minimum:g}, got {raw!r}")
    return value


def tutor_system_prompt(model_dir: str | os.PathLike | None) -> str:
    """The system prompt the model was trained with: `system_prompt` in `<model_dir>/tutor.json`
    (written by the trainer's export), else the project's tutor prompt."""
    if model_dir is None:
        return TUTOR_SYSTEM_PROMPT
    path = Path(model_dir) / "tutor.json"
    if not path.is_file():
        return TUTOR_SYSTEM_PROMPT
    try:
        prompt = json.loads(path.read_text(encoding="utf-8")).get("system_prompt")
    except (OSError, ValueError, AttributeError) as e:
        raise SettingsError(f"{path}: cannot read system_prompt ({e})") from None
    if not isinstance(prompt, str) or not prompt.strip():
        raise SettingsError(f"{path}: system_prompt must be a non-empty string")
    return prompt
