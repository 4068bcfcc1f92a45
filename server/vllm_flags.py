"""worker-vllm's environment interface: any UPPER_SNAKE variable that names a `vllm serve` flag
becomes that flag, by one rule, and a few historical names stand in for the project's own.

    vllm_env_flags({"ENABLE_PREFIX_CACHING": "true", "MAX_NUM_SEQS": "8"})
    # -> ["--enable-prefix-caching", "--max-num-seqs", "8"]
    with_aliases({"MODEL_NAME": "org/model"})  # -> {"MODEL_NAME": ..., "MODEL": "org/model"}

The rule: NAME -> `--name` with `_` as `-`, when vLLM has that flag (server/vllm_serve_flags.json,
read from the pinned vLLM's own `--help`). A flag that takes a value gets the variable's value
verbatim; a `--flag/--no-flag` pair gets `--flag` for true and `--no-flag` for false; a plain
switch gets `--flag` for true and nothing for false. The project's own variables (EngineSpec's
and the gateway's, PORT, HOST, ...) keep their meaning and are never mapped; neither are flags the
flag builder sets itself (server/engine.py: vllm_command), nor secrets (HF_TOKEN stays in the
environment, where vLLM reads it, off the command line). VLLM_EXTRA_ARGS still comes last.

Regenerate the table after a vLLM upgrade (needs vLLM, e.g. `make vllm`):

    python -m server.vllm_flags --write [--python .venv-vllm/bin/python]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

FLAGS_FILE = Path(__file__).with_name("vllm_serve_flags.json")
VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"  # takes `vllm serve`'s flags
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
# worker-vllm's names for what the project calls otherwise; the project's own name wins when set.
ALIASES = {
    "MODEL_NAME": "MODEL",
    "OPENAI_SERVED_MODEL_NAME_OVERRIDE": "SERVED_MODEL_NAME",
    "VLLM_STARTUP_TIMEOUT": "ENGINE_START_TIMEOUT_S",
}
# Never mapped: the project's own meaning (EngineSpec and Settings fields are added at run time),
# secrets, and variables every shell or container has.
RESERVED = frozenset(
    {"HOST", "PORT", "MODEL", "API_KEY", "HF_TOKEN", "CONFIG", "HELP", "HOME", "PATH", "USER"}
)
OPTION = re.compile(r"^  (-{1,2}[A-Za-z0-9].*?)(?:\s{2,}|$)")


class FlagError(ValueError):
    """A variable that names a vLLM switch has a value that is neither true nor false."""


def with_aliases(env: Mapping[str, str]) -> dict[str, str]:
    """`env` plus the project's names for worker-vllm's (MODEL_NAME -> MODEL, ...), unless the
    project's own variable is set (non-empty)."""
    out = dict(env)
    for alias, own in ALIASES.items():
        if out.get(alias) and not out.get(own):
            out[own] = out[alias]
    return out


@cache
def serve_flags() -> dict[str, str]:
    """`vllm serve`'s flags: {"--max-num-seqs": "value", "--enable-prefix-caching": "pair",
    "--disable-log-stats": "switch", ...} for the vLLM the images pin."""
    return json.loads(FLAGS_FILE.read_text(encoding="utf-8"))["flags"]


def vllm_env_flags(
    env: Mapping[str, str], own: Iterable[str] = (), taken: Iterable[str] = ()
) -> list[str]:
    """The flags the variables in `env` name (sorted by variable), leaving out RESERVED and `own`
    variables (the project's) and the flags in `taken` (already on the command line).
    FlagError naming the variable when a switch's value is not a boolean."""
    flags, out = serve_flags(), []
    skip, taken = RESERVED | set(ALIASES) | set(ALIASES.values()) | set(own), set(taken)
    for name in sorted(env):
        if name in skip or not re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", name):
            continue
        flag = "--" + name.lower().replace("_", "-")
        kind, raw = flags.get(flag), env[name]
        if kind is None or flag in taken or raw == "":
            continue
        if kind == "value":
            out += [flag, raw]
            continue
        value = raw.strip().lower()
        if value not in TRUE + FALSE:
            raise FlagError(f"{name}: {flag} is a switch; expected true or false, got {raw!r}")
        if value in TRUE:
            out.append(flag)
        elif kind == "pair":
            out.append("--no-" + flag[2:])
    return out


def parse_help(text: str) -> dict[str, str]:
    """The long flags of an argparse `--help` text and their kind: value | pair | switch."""
    flags: dict[str, str] = {}
    for line in text.splitlines():
        m = OPTION.match(line)
        if not m:
            continue
        items = [item.split(" ", 1) for item in m[1].split(", ")]
        names = [item[0] for item in items if item[0].startswith("--")]
        if not names or "--help" in names:
            continue
        takes_value = any(len(item) > 1 for item in items)
        positive = [n for n in names if f"--no-{n[2:]}" in names]
        if positive:
            flags[positive[0]] = "pair"
        else:
            for n in names:
                flags[n] = "value" if takes_value else "switch"
    return dict(sorted(flags.items()))


def installed_help(python: str) -> str:
    """`--help=all` of the vLLM server in `python` (what `vllm serve --help=all` prints)."""
    done = subprocess.run(
        [python, "-m", VLLM_SERVER_MODULE, "--help=all"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"vllm_flags: {python} -m {VLLM_SERVER_MODULE} --help=all failed:\n"
                         f"{done.stderr[-2000:]}")  # fmt: skip
    return done.stdout


def installed_version(python: str) -> str:
    code = "import vllm; print(vllm.__version__)"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=".venv-vllm/bin/python",
                        help="a Python with vLLM installed (default: .venv-vllm/bin/python)")  # fmt: skip
    parser.add_argument("--write", action="store_true", help=f"rewrite {FLAGS_FILE.name}")
    args = parser.parse_args(argv)
    flags = parse_help(installed_help(args.python))
    if args.write:
        table = {"vllm": installed_version(args.python), "flags": flags}
        FLAGS_FILE.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    for flag, kind in flags.items():
        print(f"{flag[2:].upper().replace('-', '_'):45} {flag:45} {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
