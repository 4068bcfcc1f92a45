"""`socratic data generate` and `socratic data push` (attached under `socratic data`).

    socratic data generate --out data/gen/train.jsonl --n 1000
    socratic data generate --out gen.jsonl --n 200 --base-url http://localhost:8000/v1 \\
        --model Qwen/Qwen2.5-72B-Instruct --api-key-env VLLM_API_KEY
    socratic data generate --out gen.jsonl --n 5000 --batch openai       # Batch API, half price
    socratic data generate --out gen.jsonl --n 20 --batch vllm --model MODEL_DIR
    socratic data generate --pairs --pairs-from data/gen/train.jsonl --out pairs.jsonl --n 500
    socratic data push --in data/gen/train.jsonl --repo me/socratic-dialogues

The flags of `generate` are the fields of `GenerateArgs` (datagen/settings.py: type, default and
help in one place). Only light modules are imported here; openai and datasets load inside the
commands.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from datagen.settings import PAIRS, PAIRS_GROUP, TOPIC, GenerateArgs
from tutor.cli import CommandError
from tutor.flags import add_flags


def register(data: argparse._SubParsersAction) -> None:
    g = data.add_parser(
        "generate",
        help="generate Socratic dialogues with any OpenAI-compatible model",
        description="Generate --n conversations into --out (JSONL), with validation, Socratic "
        "checks, self-critique and dedupe. Rerun the same command to resume. Writes "
        "<name>.manifest.json, <name>.critique.jsonl and <name>.rejected.jsonl beside the output. "
        "The API key is read from the environment variable named by --api-key-env. With --batch, "
        "requests go out as JSONL batch files in rounds (state in <name>.batch.json, files in "
        "<name>.batches/); rerun the same command to resume a round.",
    )
    add_flags(g, GenerateArgs, groups={TOPIC: None, PAIRS: PAIRS_GROUP})
    g.set_defaults(func=cmd_generate)

    p = data.add_parser(
        "push",
        help="publish a generated file as a Hugging Face dataset (or save it locally)",
        description="Validate FILE and save it as a Hugging Face dataset with a dataset card "
        "(README.md): pushed to the Hub with --repo, or written to --save-to DIR.",
    )
    p.add_argument(
        "--in", dest="input", required=True, type=Path, metavar="FILE", help="JSONL file (required)"
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--repo",
        default=None,
        metavar="ID",
        help="Hub dataset id, e.g. me/dialogues (this or --save-to is required)",
    )
    where.add_argument(
        "--save-to",
        type=Path,
        default=None,
        metavar="DIR",
        help="local directory to save to instead",
    )
    p.add_argument(
        "--private", action="store_true", help="create the Hub repo as private (default: public)"
    )
    p.add_argument(
        "--token-env",
        default="HF_TOKEN",
        metavar="NAME",
        help="environment variable holding the Hub token (default: HF_TOKEN)",
    )
    p.add_argument(
        "--license",
        default="apache-2.0",
        metavar="ID",
        help="license id for the card (default: apache-2.0)",
    )
    p.set_defaults(func=cmd_push)  # fmt: skip


def _generate_args(ns: argparse.Namespace) -> GenerateArgs:
    key = os.environ.get(ns.api_key_env, "")
    base_url = ns.base_url or os.environ.get("OPENAI_BASE_URL")
    if not key and not base_url and ns.batch != "vllm":
        raise CommandError(
            f"no API key: set ${ns.api_key_env} (or name another variable with --api-key-env)"
        )
    fields = {k: v for k, v in vars(ns).items() if k not in ("func", "api_key_env", "command")}
    fields.pop("data_command", None)
    return GenerateArgs(**fields, api_key=key)


def cmd_generate(ns: argparse.Namespace) -> int:
    from datagen.generate import log, run_generation, summary_line

    args = _generate_args(ns)
    t0 = time.monotonic()
    try:
        args.check()
        manifest = run_generation(args)
    except ValueError as e:  # bad settings; the project's own errors reach tutor.cli as they are
        raise CommandError(str(e)) from None
    log(summary_line(manifest, time.monotonic() - t0))
    if manifest.stop_reason != "done":
        c = manifest.counts
        reasons = ", ".join(f"{k}: {v}" for k, v in list(c["rejected"].items())[:3]) or "none"
        raise CommandError(
            f"stopped ({manifest.stop_reason}) with {manifest.conversations} of {args.n} "
            f"conversations; top rejections: {reasons}; see {manifest.path}",
            code=1,
        )
    return 0


def cmd_push(ns: argparse.Namespace) -> int:
    from datagen.push import push_dataset

    token = os.environ.get(ns.token_env) or None
    where = push_dataset(
        ns.input,
        repo=ns.repo,
        save_to=ns.save_to,
        private=ns.private,
        token=token,
        license_id=ns.license,
    )  # DataError: one line from tutor.cli
    print(f"saved to {where}")
    return 0
