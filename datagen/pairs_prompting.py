"""What a `--pairs` request asks: the source turns (from a conversation file), the twin prompt,
the critic prompt, and their structured-output formats. The session is `datagen.pairs_gen`.

A source turn is a good tutor turn and the conversation before it; `meta.claims` labels
("right" / "wrong" / null, as in data/sample/) name the point the pair contrasts.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen.job import GenerateArgs
from datagen.store import valid_rows
from tutor.io import DataError
from tutor.pairs import KINDS
from tutor.paths import PROMPTS_DIR
from tutor.prompts import TUTOR_SYSTEM_PROMPT
from tutor.schema import Limits, with_system_prompt

DEFAULT_PAIRS_TEMPLATE = PROMPTS_DIR / "pairs_prompt.txt"
DEFAULT_PAIRS_CRITIC_TEMPLATE = PROMPTS_DIR / "pairs_critic_prompt.txt"
LENGTH_RATIO = (0.5, 2.0)  # chosen / rejected characters: one point of difference, not length
_CLAIM_KIND = {"right": "right_claim", "wrong": "wrong_claim"}
_DEMAND_SITUATIONS = ("wants_answer", "insists_on_answer")
SOURCE_LIMITS = Limits(min_exchanges=1, max_exchanges=1000, max_chars=10**6)


@dataclass(frozen=True)
class SourceTurn:
    """One good tutor turn of a source conversation and what comes before it."""

    where: str  # file:line of the source conversation
    turn: int  # index of the chosen message in the conversation (system prompt = 0)
    prompt: list[dict[str, str]]  # tutor system prompt ... the student's turn
    chosen: str
    kind: str | None  # None: the model names it
    subject: str | None


@dataclass
class SourceTurns:
    """The source turns in request order, and what was left out (counted for the manifest)."""

    path: str = ""
    conversations: int = 0
    no_point: int = 0  # labelled student turns with no claim and no demand: nothing to contrast
    turns: list[SourceTurn] = field(default_factory=list)


@dataclass(frozen=True)
class PairPlan:
    """What request `index` asks for: the rejected twin of one source turn."""

    index: int
    seed: int
    source: SourceTurn
    k: int = 1  # one pair per request
    slots: tuple = ()


def source_turns(path: Path, seed: int) -> SourceTurns:
    """Every tutor turn of a conversation file that can anchor a pair, in a seeded order."""
    out, bad = SourceTurns(path=str(path)), []
    for where, conv in valid_rows(path, SOURCE_LIMITS, bad):
        out.conversations += 1
        msgs = with_system_prompt(conv.messages, TUTOR_SYSTEM_PROMPT)
        claims = conv.meta.get("claims")
        users = [i for i, m in enumerate(msgs) if m["role"] == "user"]
        labelled = isinstance(claims, list) and len(claims) == len(users)
        for k, i in enumerate(users):
            kind = None
            if labelled:
                kind = _CLAIM_KIND.get(claims[k])
                if kind is None and k == 0 and conv.meta.get("situation") in _DEMAND_SITUATIONS:
                    kind = "answer_demand"
                if kind is None:
                    out.no_point += 1
                    continue
            subject = conv.meta.get("subject")
            out.turns.append(
                SourceTurn(
                    where,
                    i + 1,
                    msgs[: i + 1],
                    msgs[i + 1]["content"],
                    kind,
                    subject if isinstance(subject, str) else None,
                )
            )
    if bad:
        raise DataError(
            f"--pairs-from: {len(bad)} invalid row(s) (first: {bad[0]}); "
            "check it with `socratic data validate`"
        )
    if not out.turns:
        raise DataError(f"--pairs-from {path}: no tutor turn to pair (no claim or demand labelled)")
    random.Random(f"pairs:{seed}").shuffle(out.turns)
    return out


def load_pair_inputs(args: GenerateArgs) -> tuple[str, str | None, SourceTurns]:
    """The pair prompt, the pair critic prompt (if critiquing) and the source turns."""
    if args.pairs_from is None:
        raise DataError("--pairs needs --pairs-from FILE (conversations with good tutor turns)")
    template_path = args.pairs_template or DEFAULT_PAIRS_TEMPLATE
    critic_path = args.pairs_critic_template or DEFAULT_PAIRS_CRITIC_TEMPLATE
    try:
        template = Path(template_path).read_text(encoding="utf-8")
        critic = Path(critic_path).read_text(encoding="utf-8") if args.critique else None
    except OSError as e:
        raise DataError(f"{e.filename}: {e.strerror}") from None
    for text, source, names in (
        (template, template_path, ("CONVERSATION", "CHOSEN", "KIND")),
        (critic, critic_path, ("CONVERSATION", "CHOSEN", "REJECTED")),
    ):
        missing = [n for n in names if text is not None and "{" + n + "}" not in text]
        if missing:
            raise DataError(f"{source}: no {{{missing[0]}}} placeholder")
    return template, critic, source_turns(Path(args.pairs_from), args.seed)


def fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def dialogue_json(prompt: list[dict[str, str]]) -> str:
    return json.dumps([m for m in prompt if m["role"] != "system"], indent=1, ensure_ascii=False)


def _schema(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": name,
            "strict": True,
            "schema": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
    }


PAIR_FORMAT = _schema(
    "rejected_twin",
    {"kind": {"type": "string", "enum": [*KINDS, "none"]}, "rejected": {"type": "string"}},
)
CRITIC_FORMAT = _schema(
    "pair_check",
    {
        "kind_holds": {"type": "boolean"},
        "differs_on_point": {"type": "boolean"},
        "differs_elsewhere": {"type": "boolean"},
        "problems": {"type": "string"},
        "verdict": {"type": "string", "enum": ["keep", "reject"]},
    },
)
