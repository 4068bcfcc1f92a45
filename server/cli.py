"""`socratic serve` (engine + gateway) and `socratic chat` (terminal chat through the gateway).

    socratic serve --model runs/tiny-tutor/merged                  # CPU: transformers serve
    socratic serve --model Qwen/Qwen2.5-7B-Instruct --lora-adapter runs/gpu/adapter --engine vllm
    socratic serve --model runs/smollm2/export --engine vllm --api-key K     # CPU: make vllm
    socratic chat --url http://127.0.0.1:8000

Every `serve` flag can also come from the environment variable named in its help; a flag wins over
the variable, which wins over the default. A flag's type, variable and default are those of its
field in server/settings.py; only that light module is imported here (the engine and the gateway
load inside the command).
"""

from __future__ import annotations

import argparse
import dataclasses
import os

from server.settings import EngineSpec, ServeOptions, Settings
from tutor.cli import CommandError
from tutor.flags import add_flag

TARGETS = {"spec": EngineSpec, "settings": Settings, "serve": ServeOptions}
TEMPLATE = "{help} (env {env}; default {shown})"

# (flag, target, help): the type, the environment variable (the field's name, upper-case) and
# the default come from the field of the target's dataclass (server/settings.py).
SERVE_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--model", "spec", "merged model dir or hub id (the base model with --lora-adapter)"),
    (
        "--engine",
        "spec",
        "auto | vllm | transformers (auto: vllm when a usable vLLM is found: VLLM_CMD, "
        "VLLM_PYTHON, .venv-vllm from `make vllm`, or `vllm` on PATH with CUDA)",
    ),
    ("--host", "settings", "gateway bind address"),
    ("--port", "settings", "gateway port"),
    (
        "--api-key",
        "settings",
        "accepted Bearer key; repeat the flag, or comma-separate in API_KEYS (none = no auth)",
    ),
    ("--served-model-name", "spec", "the model name clients see"),
    (
        "--lora-adapter",
        "spec",
        "LoRA adapter dir served on top of --model (vllm only): the adapter answers as "
        "--served-model-name, the base model as <that name>-base",
    ),
    (
        "--max-lora-rank",
        "spec",
        "vllm --max-lora-rank; rounded up to one vLLM accepts (1, 8, 16, 32, 64, ...; "
        "none = the adapter's r)",
    ),
    ("--engine-port", "spec", "engine port on 127.0.0.1"),
    (
        "--engine-url",
        "settings",
        "an OpenAI-compatible engine already running (e.g. a vllm container): start none, "
        "only the gateway in front of it",
    ),
    ("--engine-start-timeout-s", "spec", "seconds to wait for the engine's health"),
    ("--engine-max-restarts", "serve", "restarts of a dead engine before exiting 1"),
    (
        "--system-prompt-policy",
        "settings",
        "a client's own system message: keep | replace | prepend the tutor prompt",
    ),
    ("--max-tokens-cap", "settings", "largest max_tokens a request may ask, tokens"),
    ("--default-max-tokens", "settings", "max_tokens when a request gives none, tokens"),
    ("--request-timeout-s", "settings", "seconds the engine may stay silent before a 504"),
    ("--log-level", "settings", "DEBUG also logs message text"),
    (
        "--dtype",
        "spec",
        "engine dtype: auto | bfloat16 | float16 | float32 (none: vllm on CPU float32, else auto)",
    ),
    ("--max-model-len", "spec", "vllm context length, tokens"),
    ("--gpu-memory-utilization", "spec", "vllm GPU memory fraction, 0..1"),
    ("--tensor-parallel-size", "spec", "vllm GPUs per model"),
    ("--quantization", "spec", "vllm quantization method (awq, gptq, fp8, ...)"),
    ("--vllm-extra-args", "spec", "more vllm serve flags, appended last"),
)


def register(root: argparse._SubParsersAction) -> None:
    serve = root.add_parser(
        "serve",
        help="run the engine and the OpenAI-compatible gateway",
        description="Start the inference engine (vLLM on GPU or CPU, or transformers serve on "
        "CPU) and the gateway in front of it; SIGTERM/Ctrl-C stops both. Endpoints: "
        "/v1/chat/completions, /v1/models, /health, /ready, /metrics, and the student chat page "
        "at / (env WEB_UI; default 1, 0 = off). More settings (limits, keys) in docs/serving.md.",
    )
    for flag, target, text in SERVE_FLAGS:
        f = _field(flag, target)
        extra = {"action": "append", "metavar": "API_KEY"} if flag == "--api-key" else {}
        show = "none" if flag == "--engine-url" else None  # unset: start an engine
        add_flag(serve, f, flag, text, template=TEMPLATE, default=None, show=show, **extra)
    serve.set_defaults(func=cmd_serve)

    chat = root.add_parser(
        "chat",
        help="chat with the tutor in the terminal",
        description="Interactive chat through the gateway: streamed answers, multi-turn history, "
        "/reset for a new conversation, /quit to leave.",
    )
    chat.add_argument(
        "--url",
        default=os.environ.get("SOCRATIC_URL", "http://127.0.0.1:8000"),
        help="gateway base URL (env SOCRATIC_URL; default http://127.0.0.1:8000)",
    )
    chat.add_argument("--api-key", default=None, help="Bearer key (env API_KEY; default none)")
    chat.add_argument("--model", default=None, help="model name (default: the first of /v1/models)")
    chat.add_argument(
        "--max-tokens", type=int, default=None, help="tokens per answer (default: the server's)"
    )
    chat.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature, 0..2 (default: the model's)",
    )
    chat.set_defaults(func=cmd_chat)


def _field(flag: str, target: str) -> dataclasses.Field:
    """The dataclass field behind a `serve` flag (--api-key fills `api_keys`)."""
    name = "api_keys" if flag == "--api-key" else flag[2:].replace("-", "_")
    return next(f for f in dataclasses.fields(TARGETS[target]) if f.name == name)


def _collect(args: argparse.Namespace) -> dict[str, dict]:
    """CLI values that were given, grouped by target, by dataclass field name."""
    given: dict[str, dict] = {target: {} for target in TARGETS}
    for flag, target, _text in SERVE_FLAGS:
        name = _field(flag, target).name
        value = getattr(args, name)
        if value is None:
            continue
        if flag == "--api-key":
            value = tuple(k for v in value for k in v.split(",") if k)
        given[target][name] = value
    return given


def cmd_serve(args: argparse.Namespace) -> int:
    from server.launch import serve_foreground
    from server.settings import env_number

    given = _collect(args)
    engine_url = given["settings"].get("engine_url") or os.environ.get("ENGINE_URL")
    try:
        if engine_url:
            from server.launch import serve_gateway_only

            return serve_gateway_only({**given["settings"], "engine_url": engine_url})
        spec = EngineSpec.from_env(os.environ, **given["spec"])
        restarts = given["serve"].get("engine_max_restarts")
        if restarts is None:
            restarts = env_number(
                os.environ, "ENGINE_MAX_RESTARTS", ServeOptions.engine_max_restarts
            )
        return serve_foreground(spec, given["settings"], restarts)
    except ValueError as e:  # SettingsError included; EngineError reaches tutor.cli (exit 1)
        raise CommandError(str(e), code=1) from None


def cmd_chat(args: argparse.Namespace) -> int:
    from server.chat import run_chat

    key = args.api_key or os.environ.get("API_KEY")
    return run_chat(args.url, key, args.model, args.max_tokens, args.temperature)
