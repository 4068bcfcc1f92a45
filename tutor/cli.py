"""The `socratic` command line.

Each stage owns a small `cli` module that only imports argparse-level code at import time and
registers its subcommands; heavy libraries (torch, transformers, httpx, openai, ...) are imported
inside the command functions, so `socratic data validate` never loads torch.

    socratic --help
    socratic data validate data/sample/dialogues.jsonl
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from tutor import __version__
from tutor.errors import UserError

# (module, where its subcommands attach). Modules that are not present are skipped.
STAGES = (
    ("tutor.data_cli", "root"),
    ("datagen.cli", "data"),
    ("trainer.cli", "root"),
    ("trainer.gguf_import", "root"),
    ("server.cli", "root"),
    ("evaluation.cli", "root"),
    ("bench.cli", "root"),
    ("pipeline.demo", "root"),
)


class CommandError(UserError):
    """A user-facing failure: printed as one line `socratic: error: ...`, exit code 2 unless given."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = self.exit_code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="socratic",
        description="Socratic tutor: data, training, export, serving, evaluation and benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"socratic-tutor {__version__}")
    root = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    attach = {"root": root}
    for module_name, where in STAGES:
        if importlib.util.find_spec(module_name.rsplit(".", 1)[0]) is None:
            continue
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        added = module.register(attach[where])
        if isinstance(added, dict):
            attach.update(added)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:  # every error of the project's own (tutor.errors): one line
        print(f"socratic: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("socratic: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`socratic ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141  # 128 + SIGPIPE, as a shell tool would


if __name__ == "__main__":
    # `python -m tutor.cli` runs this file as __main__; dispatch through the importable module so
    # CommandError raised by stage modules (which import tutor.cli) is the class it defines.
    from tutor.cli import main as _main

    sys.exit(_main())
