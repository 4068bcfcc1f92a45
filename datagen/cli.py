"""`socratic data generate` and `socratic data push` (attached under `socratic data`).

    socratic data generate --out data/gen/train.jsonl --n 1000
    socratic data generate --out gen.jsonl --n 200 --base-url http://localhost:8000/v1 \\
        --model Qwen/Qwen2.5-72B-Instruct --api-key-env VLLM_API_KEY
    socratic data generate --out gen.jsonl --n 5000 --batch openai       # Batch API, half price
    socratic data generate --out gen.jsonl --n 20 --batch vllm --model MODEL_DIR
    socratic data generate --pairs --pairs-from data/gen/train.jsonl --out pairs.jsonl --n 500
    socratic data push --in data/gen/train.jsonl --repo me/socratic-dialogues

Only argparse-level code is imported here; openai and datasets load inside the commands.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from datagen.pairs_cli import add_pair_args
from tutor.cli import CommandError


def _exchanges(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN-MAX, got {text!r}") from None


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
    add = g.add_argument
    add(
        "--out",
        required=True,
        type=Path,
        metavar="FILE.jsonl",
        help="output file (required; appended)",
    )
    add(
        "--n",
        required=True,
        type=int,
        metavar="N",
        help="conversations the file should hold (required)",
    )
    add(
        "--exchanges",
        type=_exchanges,
        default="2-6",
        metavar="MIN-MAX",
        help="user+assistant pairs per conversation, drawn per request, e.g. 2-6 or 4 "
        "(default: 2-6)",
    )
    topic = g.add_mutually_exclusive_group()
    topic.add_argument(
        "--topic",
        default="general",
        metavar="TOPIC",
        help="'general' = the bundled subject list; a subject of that list; or any topic "
        "(default: general)",
    )
    topic.add_argument(
        "--topics",
        dest="topics_file",
        type=Path,
        default=None,
        metavar="FILE",
        help="your own 'subject: sub-topic; sub-topic' list instead of the bundled one (default: "
        "none)",
    )
    add(
        "--per-request",
        type=int,
        default=5,
        metavar="K",
        help="conversations asked per request (default: 5)",
    )
    add(
        "--model",
        default="gpt-4o-mini",
        metavar="M",
        help="generator model name (default: gpt-4o-mini)",
    )
    add(
        "--base-url",
        default=None,
        metavar="URL",
        help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (default: "
        "$OPENAI_BASE_URL if set, else OpenAI)",
    )
    add(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="NAME",
        help="environment variable holding the API key, optional for a --base-url endpoint "
        "(default: OPENAI_API_KEY)",
    )
    add(
        "--concurrency",
        type=int,
        default=8,
        metavar="C",
        help="requests in flight; with --batch and --max-cost, the size of the first round "
        "(default: 8)",
    )
    add(
        "--critique",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="constitutional self-critique and revision of every conversation (default: on)",
    )
    add("--critic-model", default=None, metavar="M", help="critic model (default: the --model)")
    add(
        "--min-score",
        type=int,
        default=3,
        metavar="S",
        help="a principle scored below S (1-5) by the critic triggers a revision (default: 3)",
    )
    add(
        "--seed", type=int, default=0, metavar="S", help="seed of the per-request plan (default: 0)"
    )
    add(
        "--max-cost",
        type=float,
        default=None,
        metavar="USD",
        help="stop launching requests once the estimated cost of the file reaches USD "
        "(US dollars; default: no limit)",
    )
    add(
        "--price-in",
        type=float,
        default=None,
        metavar="USD",
        help="price in USD per 1M input tokens (default: the built-in table for known models)",
    )
    add(
        "--price-out",
        type=float,
        default=None,
        metavar="USD",
        help="price in USD per 1M output tokens (default: the built-in table for known models)",
    )
    add(
        "--template",
        type=Path,
        default=None,
        metavar="FILE",
        help="generator prompt with {NUM_CONVERSATIONS}, {NUM_EXCHANGES}, {TOPIC} (default: "
        "data/prompts/generator_prompt.txt)",
    )
    add(
        "--critic-template",
        type=Path,
        default=None,
        metavar="FILE",
        help="critic prompt with {CONVERSATION}, {MIN_SCORE} (default: "
        "data/prompts/critic_prompt.txt)",
    )
    add(
        "--addendum",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="append the per-conversation student situation and difficulty plan to the prompt "
        "(default: on)",
    )
    add(
        "--structured",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ask for JSON-schema structured output, dropped automatically if refused "
        "(default: on)",
    )
    add(
        "--temperature",
        type=float,
        default=1.0,
        metavar="T",
        help="generator temperature (default: 1.0)",
    )
    add(
        "--max-tokens",
        type=int,
        default=0,
        metavar="N",
        help="output tokens per generation request; 0 = sized from --per-request and exchanges "
        "(default: 0)",
    )
    add(
        "--timeout",
        dest="timeout_s",
        type=float,
        default=300.0,
        metavar="SEC",
        help="per-request timeout in seconds (default: 300)",
    )
    add(
        "--retries",
        type=int,
        default=6,
        metavar="N",
        help="retries per request on 429/5xx/timeouts; with --batch, the later rounds a failed "
        "line may go into (default: 6)",
    )
    add(
        "--retry-base",
        dest="retry_base_s",
        type=float,
        default=1.0,
        metavar="SEC",
        help="first backoff in seconds; doubles per retry, jittered; Retry-After wins if longer "
        "(default: 1.0)",
    )
    add(
        "--breaker",
        type=int,
        default=10,
        metavar="N",
        help="stop the run after N failed attempts in a row (default: 10)",
    )
    add(
        "--max-requests",
        type=int,
        default=0,
        metavar="N",
        help="generation requests this run may send; 0 = 4x the expected need + 8 (default: 0)",
    )
    add(
        "--max-words",
        type=int,
        default=150,
        metavar="N",
        help="longest tutor turn, in words (default: 150)",
    )
    add(
        "--max-chars",
        type=int,
        default=4000,
        metavar="N",
        help="longest message, in characters (default: 4000)",
    )
    add(
        "--dedupe-against",
        type=Path,
        nargs="*",
        default=[],
        metavar="FILE",
        help="other conversation files that generated ones must not duplicate (default: none)",
    )
    add(
        "--batch",
        choices=("openai", "vllm"),
        default=None,
        help="send the requests as batch files instead of one by one: 'openai' = the OpenAI "
        "Batch API (half the price, done within 24 h); 'vllm' = vLLM's offline batch runner on "
        "--model (a local dir or Hub id), run with $VLLM_PYTHON (default: .venv-vllm/bin/python "
        "in the checkout, else this Python) (default: off, real time)",
    )
    add(
        "--poll-interval",
        dest="poll_s",
        type=float,
        default=30.0,
        metavar="SEC",
        help="seconds between status checks of an OpenAI batch (default: 30)",
    )
    add(
        "--cancel-batch",
        action="store_true",
        help="cancel the OpenAI batch in flight, keep the requests it finished, and stop; a "
        "later rerun sends the rest (default: off)",
    )
    add(
        "--vllm-args",
        default="",
        metavar="ARGS",
        help="extra flags for vLLM's batch runner, one quoted string, e.g. "
        "'--tensor-parallel-size 4 --max-model-len 8192'; on vLLM's CPU build, --dtype float32 "
        "--max-model-len 2048 --enforce-eager and no chunked prefill are added unless given "
        "(default: none)",
    )
    add_pair_args(g)
    add(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="hide the progress bar (shown by default)",
    )
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


def _generate_args(ns: argparse.Namespace):
    from datagen.critique import DEFAULT_CRITIC_TEMPLATE
    from datagen.generate import GenerateArgs
    from datagen.prompting import DEFAULT_TEMPLATE

    key = os.environ.get(ns.api_key_env, "")
    base_url = ns.base_url or os.environ.get("OPENAI_BASE_URL")
    if not key and not base_url and ns.batch != "vllm":
        raise CommandError(
            f"no API key: set ${ns.api_key_env} (or name another variable with --api-key-env)"
        )
    fields = {k: v for k, v in vars(ns).items() if k not in ("func", "api_key_env", "command")}
    fields.pop("data_command", None)
    fields["template"] = ns.template or DEFAULT_TEMPLATE
    fields["critic_template"] = ns.critic_template or DEFAULT_CRITIC_TEMPLATE
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
