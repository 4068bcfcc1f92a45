"""Gateway settings: read from environment variables once into a typed, frozen object.

    settings = Settings.from_env()                       # os.environ
    settings = Settings.from_env(env, engine_url="...")  # explicit values win over env

Every field has an environment variable (upper-case name in `ENV`) and a default; docs/serving.md
lists them all. Bad values fail at start-up with one line naming the variable.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.vllm_flags import with_aliases
from tutor.errors import UserError
from tutor.prompts import TUTOR_SYSTEM_PROMPT

POLICIES = ("keep", "replace", "prepend")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class SettingsError(UserError, ValueError):
    """A setting has a bad value; the message names the environment variable."""

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
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = field.name.upper()
            if field.name in overrides or name not in env or env[name] == "":
                continue
            values[field.name] = _parse(field.name, env[name], field.default)
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


def _parse(name: str, raw: str, default: Any) -> Any:
    """Convert one environment string to the type of the field's default."""
    if name == "api_keys":
        return tuple(k.strip() for k in raw.split(",") if k.strip())
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise SettingsError(f"{name.upper()}: expected a number, got {raw!r}") from None
    return raw


def env_number(env: Mapping[str, str], name: str, default: int | float, minimum: float = 0) -> Any:
    """The number in env[name] (the type of `default`; unset or empty = `default`), at least
    `minimum`; SettingsError naming the variable otherwise."""
    raw = env.get(name, "")
    value = default if raw == "" else _parse(name, raw, default)
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
