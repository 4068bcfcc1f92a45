"""The `--pairs` flags of `socratic data generate` (argparse only; the logic is datagen.pairs_gen)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_pair_args(g: argparse.ArgumentParser) -> None:
    pairs = g.add_argument_group(
        "preference pairs (--pairs)",
        "Write preference pairs (tutor.pairs format) instead of conversations: for every good "
        "tutor turn of --pairs-from, the model writes its rejected twin (accepts a wrong claim, "
        "doubts a right one, or hands over a demanded answer) and the critic keeps the pair only "
        "when it differs on that point alone. --n counts pairs; one request per source turn.",
    )
    pairs.add_argument(
        "--pairs", action="store_true", help="generate preference pairs (default: conversations)"
    )
    pairs.add_argument(
        "--pairs-from",
        type=Path,
        default=None,
        metavar="FILE",
        help="conversations whose tutor turns become the chosen sides, e.g. "
        "data/sample/dialogues.jsonl or a generated file; meta.claims labels name the point "
        "(required with --pairs)",
    )
    pairs.add_argument(
        "--pairs-template",
        type=Path,
        default=None,
        metavar="FILE",
        help="prompt with {CONVERSATION}, {CHOSEN}, {KIND} (default: data/prompts/pairs_prompt.txt)",
    )
    pairs.add_argument(
        "--pairs-critic-template",
        type=Path,
        default=None,
        metavar="FILE",
        help="critic prompt with {CONVERSATION}, {CHOSEN}, {REJECTED}, {KIND} "
        "(default: data/prompts/pairs_critic_prompt.txt)",
    )
