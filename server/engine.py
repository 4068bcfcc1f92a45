"""The inference engine: a separate OpenAI-compatible process (vLLM on GPU or CPU, or the light
`transformers serve` on CPU), its command line built by pure functions, and a launcher that waits
for health, forwards SIGTERM to the whole process group and reports the engine's last log lines.

    spec = EngineSpec.from_env(model="runs/tiny-tutor/merged")
    kind = resolve_engine(spec.engine)                     # "vllm" | "transformers"
    engine = EngineProcess(*engine_launch(spec, kind), spec.health_url)
    engine.start(); engine.wait_healthy(spec.start_timeout_s); ...; engine.stop()

The project never imports vllm. One flag builder (`vllm_command`) serves GPU and CPU; only the
launcher in front of the flags differs, found in this order: VLLM_CMD (e.g. `vllm serve`),
VLLM_PYTHON (a Python with vLLM: `-m vllm.entrypoints.openai.api_server`), the checkout's
`.venv-vllm` (`make vllm`: vLLM's CPU build), then `vllm serve` from PATH (the GPU image). `auto`
picks vLLM when one is found and usable here (a CPU build, or CUDA), else `transformers serve`.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from server.settings import (  # EngineSpec and its errors are importable from here too
    ENGINES,
    EngineError,
    EngineSpec,
    Settings,
)
from server.vllm_flags import FlagError, vllm_env_flags
from tutor.proc import StartError, stop_process, wait_healthy
from tutor.vllm import (  # CPU_ENV: VLLM_CPU_KVCACHE_SPACE default on CPU (GiB)
    CPU_ENV,
    VllmError,
    check_vllm,
    cpu_default_flags,
    find_vllm,
    vllm_on_cpu,
    vllm_usable,
)

IM_END = "<|im_end|>"
# vllm/config/lora.py MaxLoRARanks: any other --max-lora-rank stops vLLM at start-up.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


# Variables the project reads itself: never mapped to `vllm serve` flags by name.
OWN_VARIABLES = frozenset(
    f.name.upper() for f in (*dataclasses.fields(EngineSpec), *dataclasses.fields(Settings))
)


def resolve_engine(requested: str, vllm: bool | None = None) -> str:
    """`auto` -> vllm when a usable vLLM is found (`vllm_usable`), else transformers."""
    if requested not in ENGINES:
        raise EngineError(f"engine must be one of {ENGINES}, got {requested!r}")
    if requested != "auto":
        return requested
    vllm = vllm_usable(find_vllm()) if vllm is None else vllm
    return "vllm" if vllm else "transformers"


def chat_template_path(spec: EngineSpec) -> Path | None:
    """The exported chat template (adapter dir first, then the model dir), when there is one."""
    for root in (spec.lora_adapter, spec.model):
        if root and (Path(root) / "chat_template.jinja").is_file():
            return Path(root) / "chat_template.jinja"
    return None


def adapter_rank(adapter_dir: str) -> int | None:
    try:
        return int(json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["r"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def vllm_lora_rank(rank: int) -> int:
    """The smallest --max-lora-rank vLLM accepts that holds `rank` (r=24 -> 32)."""
    for allowed in VLLM_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise EngineError(f"MAX_LORA_RANK: LoRA rank {rank} is above vLLM's largest, 512")


def base_model_name(spec: EngineSpec) -> str:
    """The name vLLM serves the base model under when a LoRA adapter takes SERVED_MODEL_NAME."""
    return spec.served_model_name + "-base" if spec.lora_adapter else spec.served_model_name


def vllm_command(
    spec: EngineSpec,
    launcher: Sequence[str] = ("vllm", "serve"),
    cpu: bool = False,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """`<launcher> --model MODEL ...` with `vllm serve`'s flags: the merged model served as
    SERVED_MODEL_NAME, or the base model (as `<name>-base`) plus the LoRA adapter registered
    under SERVED_MODEL_NAME. `cpu`: float32 unless DTYPE says otherwise. Then every variable in
    `env` that names another `vllm serve` flag (server/vllm_flags.py: ENABLE_PREFIX_CACHING=true
    -> --enable-prefix-caching). VLLM_EXTRA_ARGS come last and so win."""
    cmd = [*launcher, "--model", spec.model]
    cmd += ["--host", spec.engine_host, "--port", str(spec.engine_port)]
    # The model's generation_config.json (eos = <|im_end|>) sets the default stop tokens.
    cmd += ["--generation-config", "auto", "--served-model-name", base_model_name(spec)]
    if spec.lora_adapter:
        cmd += ["--enable-lora", "--lora-modules", f"{spec.served_model_name}={spec.lora_adapter}"]
        rank = spec.max_lora_rank or adapter_rank(spec.lora_adapter)
        if rank:
            cmd += ["--max-lora-rank", str(vllm_lora_rank(rank))]
    template = chat_template_path(spec)
    if template:
        cmd += ["--chat-template", str(template)]
    optional = {
        "--max-model-len": spec.max_model_len,
        "--gpu-memory-utilization": spec.gpu_memory_utilization,
        "--tensor-parallel-size": spec.tensor_parallel_size,
        "--dtype": spec.dtype or ("float32" if cpu else None),
        "--quantization": spec.quantization,
    }
    for flag, value in optional.items():
        if value is not None:
            cmd += [flag, str(value)]
    if env:
        taken = [arg for arg in cmd if arg.startswith("--")]
        try:
            cmd += vllm_env_flags(env, own=OWN_VARIABLES, taken=taken)
        except FlagError as e:
            raise EngineError(str(e)) from None
    extra = shlex.split(spec.vllm_extra_args)
    if cpu:  # eager mode, one-step prefill, a bounded context: tutor.vllm.CPU_FLAGS says why
        cmd += cpu_default_flags(cmd + extra)
    return cmd + extra


def transformers_command(spec: EngineSpec, python: str = sys.executable) -> list[str]:
    """`transformers serve MODEL ...` pinned to the one model (it answers any `model` by it)."""
    if spec.lora_adapter:
        raise EngineError("LORA_ADAPTER: the transformers engine serves merged models only")
    cmd = [python, "-m", "transformers.cli.transformers", "serve", spec.model]
    cmd += ["--host", spec.engine_host, "--port", str(spec.engine_port), "--device", spec.device]
    cmd += ["--dtype", spec.dtype or "auto", "--log-level", "warning"]
    return cmd


def engine_launch(
    spec: EngineSpec, kind: str, env: Mapping[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The engine's command line and environment for `kind` (vllm: through the vLLM found here,
    EngineError in one line when none can run)."""
    if kind != "vllm":
        return transformers_command(spec), engine_env(spec, env)
    try:
        install = check_vllm(find_vllm(env))
    except VllmError as e:
        raise EngineError(str(e)) from None
    cpu = vllm_on_cpu(install)
    command = vllm_command(spec, install.launcher, cpu, os.environ if env is None else env)
    return command, engine_env(spec, env, vllm_cpu=cpu)


def upstream_model(spec: EngineSpec, kind: str) -> str | None:
    """The `model` the gateway sends: vLLM's served name; transformers serve takes none."""
    return spec.served_model_name if kind == "vllm" else None


def engine_env(
    spec: EngineSpec, base: Mapping[str, str] | None = None, vllm_cpu: bool = False
) -> dict[str, str]:
    """The engine's environment: offline when the model is a local directory, no update checks;
    vLLM on CPU gets a KV cache of tutor.vllm.CPU_ENV's size unless VLLM_CPU_KVCACHE_SPACE says otherwise."""
    env = dict(os.environ if base is None else base)
    # Already on the command line; vLLM warns about every VLLM_* variable it does not know.
    env.pop("VLLM_EXTRA_ARGS", None)
    env["HF_HUB_DISABLE_UPDATE_CHECK"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    if vllm_cpu:
        for key, value in CPU_ENV.items():
            env.setdefault(key, value)
    if Path(spec.model).is_dir() and (not spec.lora_adapter or Path(spec.lora_adapter).is_dir()):
        env["HF_HUB_OFFLINE"] = "1"
    return env


def stop_token_warning(model_dir: str) -> str | None:
    """A warning when a local model's eos is not <|im_end|> (it would generate to max_tokens)."""
    path = Path(model_dir) / "tokenizer_config.json"
    if not path.is_file():
        return None
    try:
        eos = json.loads(path.read_text(encoding="utf-8")).get("eos_token")
    except (OSError, ValueError):
        return f"{path}: unreadable"
    eos = eos.get("content") if isinstance(eos, dict) else eos
    if eos != IM_END:
        return f"{path}: eos_token is {eos!r}, not {IM_END!r}; answers may not stop"
    return None


class EngineProcess:
    """One engine child process in its own process group, its output echoed with a prefix and its
    last lines kept for error messages."""

    def __init__(
        self,
        command: list[str],
        env: Mapping[str, str],
        health_url: str,
        keep_lines: int = 40,
        echo: bool = True,
    ):
        self.command, self.env, self.health_url, self.echo = command, dict(env), health_url, echo
        self.lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        try:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                text=True,
                errors="replace",
            )
        except OSError as e:
            raise EngineError(
                f"cannot start the engine ({shlex.join(self.command[:3])}): {e}"
            ) from None
        self._reader = threading.Thread(target=self._read, name="engine-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if self.echo:
                print(f"[engine] {line}", file=sys.stderr, flush=True)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self) -> str:
        return "\n".join(self.lines) or "(no output)"

    def wait_healthy(self, timeout_s: float, poll_s: float = 0.5) -> None:
        """Block until GET health_url answers 200; fail fast if the process exits."""
        try:
            wait_healthy(self.health_url, timeout_s, self.proc, self._tail_after_exit, poll_s)
        except StartError as e:
            if e.returncode is not None:
                raise EngineError(
                    f"the engine exited with code {e.returncode} during start-up; last log lines:\n{e.tail}"
                ) from None
            self.stop()
            raise EngineError(
                f"the engine was not healthy at {self.health_url} within {timeout_s:g} s "
                f"(raise ENGINE_START_TIMEOUT_S for big models); last log lines:\n{self.tail()}"
            ) from None

    def _tail_after_exit(self) -> str:
        if not self.alive:
            self._join_reader()  # the last lines the process wrote
        return self.tail()

    def signal(self, sig: int) -> None:
        """Send `sig` to the engine's whole process group (vLLM runs worker processes)."""
        if self.alive:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace_s` seconds; returns the exit code."""
        if self.proc is None:
            return None
        stop_process(self.proc, grace_s, group=True)
        self._join_reader()
        return self.proc.returncode

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=2)
