"""Preference pairs: TRL's conversational preference rows, validated with the conversation schema.

One row per line (JSONL), UTF-8:

    {"prompt": [{"role": "system", ...}, {"role": "user", ...}, ...],
     "chosen": [{"role": "assistant", "content": "..."}],
     "rejected": [{"role": "assistant", "content": "..."}],
     "id": "pp-001", "subject": "algebra", "kind": "wrong_claim"}

Rules: `prompt` is a conversation under `tutor.schema` ending with a user turn (the tutor writes the
next turn); `chosen` and `rejected` are each exactly one non-empty assistant message; the two differ
(after case and whitespace normalisation). `id`, `subject`, `kind` (one of `KINDS`) and `meta` are
optional; other keys are kept. `load_pairs(path)` returns every row or raises `PairsError` naming
`file:line: field: reason` for the first bad row; `iter_pairs` reports every row (nothing dropped).

    from tutor.pairs import load_pairs
    rows = load_pairs("data/pairs/pairs.jsonl")  # list of dicts, ready for TRL's DPOTrainer
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from tutor.data import RowCounts, iter_valid
from tutor.errors import UserError
from tutor.io import MAX_LINE_BYTES, DataError
from tutor.schema import (
    Limits,
    SchemaError,
    _type_name,
    normalise_text,
    parse_message,
    parse_messages,
    with_system_prompt,
)

PAIR_KEYS = ("prompt", "chosen", "rejected")
Kind = Literal["wrong_claim", "right_claim", "answer_demand"]
KINDS: tuple[str, ...] = get_args(Kind)
_STR_KEYS = ("id", "subject")


class PairsError(UserError, ValueError):
    """A pairs file cannot be used; the message is one line naming `file:line: field: reason`."""


def is_pair_record(record: Any) -> bool:
    """True when a record has the preference keys (`prompt`, `chosen`, `rejected`)."""
    return isinstance(record, dict) and all(k in record for k in PAIR_KEYS)


def parse_pair(record: Any, limits: Limits | None = None) -> dict[str, Any]:
    """Validate one preference row and return it normalised (raises `SchemaError` naming the field).

    Messages are reduced to plain {role, content}; the optional keys are kept as they are.
    """
    if not isinstance(record, dict):
        raise SchemaError(f"record: expected a JSON object, got {_type_name(record)}")
    missing = [k for k in PAIR_KEYS if k not in record]
    if missing:
        raise SchemaError(
            f"record: missing key {missing[0]!r} (a preference row has {', '.join(PAIR_KEYS)})"
        )
    limits = limits or Limits()
    prompt = parse_messages(record["prompt"], "prompt", limits, final_role="user")
    sides = {side: _parse_side(record[side], side, limits) for side in ("chosen", "rejected")}
    if normalise_text(sides["chosen"][0]["content"]) == normalise_text(
        sides["rejected"][0]["content"]
    ):
        raise SchemaError("rejected[0].content: equal to chosen[0].content; a pair must differ")
    for key in _STR_KEYS:
        if key in record and not (isinstance(record[key], str) and record[key].strip()):
            raise SchemaError(f"{key}: expected a non-empty string, got {_type_name(record[key])}")
    if "kind" in record and record["kind"] not in KINDS:
        raise SchemaError(f"kind: unknown {record['kind']!r} (allowed: {', '.join(KINDS)})")
    if "meta" in record and not isinstance(record["meta"], dict):
        raise SchemaError(f"meta: expected an object, got {_type_name(record['meta'])}")
    return {**record, "prompt": prompt, **sides}


def _parse_side(raw: Any, key: str, limits: Limits) -> list[dict[str, str]]:
    """One side of a pair: a list holding exactly one non-empty assistant message."""
    if not isinstance(raw, list):
        raise SchemaError(f"{key}: expected a list of one assistant message, got {_type_name(raw)}")
    if len(raw) != 1:
        raise SchemaError(f"{key}: expected exactly one assistant message, got {len(raw)}")
    msg = parse_message(raw[0], f"{key}[0]", limits)
    if msg["role"] != "assistant":
        raise SchemaError(f"{key}[0].role: expected 'assistant', got {msg['role']!r}")
    return [msg]


def import_pair(record: Any) -> dict[str, Any]:
    """Bring a preference row of a common shape into the conversational form (then `parse_pair`).

    Shapes: conversational (`prompt` a message list; `chosen`/`rejected` one-message lists, kept);
    standard (`prompt`, `chosen`, `rejected` strings: a user turn and two assistant replies); and
    implicit prompt (no `prompt`; `chosen` and `rejected` are whole conversations sharing every
    message but the last, which become the prompt).
    """
    if not isinstance(record, dict):
        raise SchemaError(f"record: expected a JSON object, got {_type_name(record)}")
    if "prompt" not in record and isinstance(record.get("chosen"), list):
        chosen, rejected = record["chosen"], record.get("rejected")
        if not isinstance(rejected, list) or len(rejected) != len(chosen) or len(chosen) < 2:
            raise SchemaError(
                "rejected: an implicit-prompt row needs chosen and rejected conversations of "
                "equal length (prompt + one reply each)"
            )
        if chosen[:-1] != rejected[:-1]:
            raise SchemaError(
                "rejected: differs from chosen before the last message (no shared prompt)"
            )
        return {**record, "prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]}
    out = dict(record)
    for key, role in (("prompt", "user"), ("chosen", "assistant"), ("rejected", "assistant")):
        if isinstance(record.get(key), str):
            out[key] = [{"role": role, "content": record[key]}]
    return out


def is_preference_shape(record: Any) -> bool:
    """True when a record looks like a preference row of any shape `import_pair` reads."""
    return isinstance(record, dict) and "chosen" in record and "rejected" in record


@dataclass
class PairsReport(RowCounts):
    """Counts and problems found while reading pairs files; every row is counted once
    (`duplicates`: rows whose prompt+chosen+rejected repeat an earlier row)."""

    deduped: bool = False
    kinds: Counter = field(default_factory=Counter)
    subjects: Counter = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {
            "format": "preference",
            "rows": self.rows,
            "valid": self.valid,
            "invalid": len(self.invalid),
            "duplicates": self.duplicates,
            "invalid_by_reason": self.invalid_by_reason,
            "kinds": dict(self.kinds.most_common()),
            "subjects": dict(self.subjects.most_common()),
        }


def pair_fingerprint(pair: dict[str, Any]) -> str:
    """A stable key for exact duplicate pairs (system prompt excluded, text normalised)."""
    parts = [m for m in pair["prompt"] if m["role"] != "system"]
    parts += [{"role": "chosen", "content": pair["chosen"][0]["content"]}]
    parts += [{"role": "rejected", "content": pair["rejected"][0]["content"]}]
    return "\x1e".join(f"{m['role']}\x1f{normalise_text(m['content'])}" for m in parts)


def iter_pairs(
    paths: Iterable[str | Path],
    report: PairsReport,
    *,
    limits: Limits | None = None,
    convert: bool = False,
    system_prompt: str | None = None,
    dedupe: bool = False,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[dict[str, Any]]:
    """Yield valid pairs from files, recording every bad row as (`file:line`, reason) in `report`.

    `convert` reads the other shapes too (`import_pair`); `system_prompt` is inserted into prompts
    without one; `dedupe` skips exact duplicates (counted), else they are yielded and counted.
    """

    def parse(value: Any) -> dict[str, Any]:
        pair = parse_pair(import_pair(value) if convert else value, limits)
        if system_prompt is not None:
            pair["prompt"] = with_system_prompt(pair["prompt"], system_prompt)
        return pair

    pairs = iter_valid(
        paths, report, parse, pair_fingerprint, dedupe=dedupe, max_line_bytes=max_line_bytes
    )
    for pair in pairs:
        report.kinds[pair.get("kind", "-")] += 1
        report.subjects[pair.get("subject", "-")] += 1
        yield pair


def load_pairs(path: str | Path, limits: Limits | None = None) -> list[dict[str, Any]]:
    """Read every row of a pairs file; raise `PairsError` (`file:line: reason`) at the first bad one."""
    report = PairsReport()
    out = []
    try:
        for pair in iter_pairs([path], report, limits=limits):
            if report.invalid:
                break
            out.append(pair)
    except DataError as e:
        raise PairsError(str(e)) from None
    if report.invalid:
        where, reason = report.invalid[0]
        raise PairsError(f"{where}: {reason}")
    if not out:
        raise PairsError(f"{path}: no preference rows")
    return out
