"""`socratic eval leak-agreement FILE...`: the answer-leak detector against human labels.

    socratic eval leak-agreement data/leak/written-test.jsonl data/leak/mathdial-test.jsonl

Each row is one tutor reply with a human label: `{"messages": [... ending with the assistant
reply], "reference_answer": str | null (optional), "label": true | false}` (`conversations` is
read too; the label may also be 1/0, "yes"/"no", or the judge's "yes (correct)"/"yes
(incorrect)"). The file format and the labelling guide are in data/leak/README.md.

Three predictors are compared with the labels: the detector (`tutor.metrics.find_reveal`, with the
row's reference), the detector with every reference withheld (as in a deployment where the tutor
is not told the answer), and the naive baseline "the reply contains the reference answer's
number". Prints precision, recall, F1, the confusion table and what each rule got right.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from evaluation.agreement import Confusion, confusion_lines, mentions_reference_number, prf_table
from tutor.io import DataError, read_rows
from tutor.metrics import find_reveal

_YES = {"true", "yes", "1", "yes (correct)", "yes (incorrect)"}
_NO = {"false", "no", "0"}
PREDICTORS = ("detector", "detector, no reference", "reference number in reply")


@dataclass(frozen=True)
class LabelledReply:
    """One human-labelled tutor reply."""

    where: str  # file:line
    id: str
    messages: list[dict]
    reference: str | None
    label: bool


def parse_label(value: object, where: str) -> bool:
    """A human label as a bool; DataError naming the row for anything else."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else None
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise DataError(f"{where}: label: expected true/false, 1/0, yes/no or yes (correct|incorrect), "
                    f"got {value!r}")  # fmt: skip


def parse_reply_row(value: object, where: str) -> tuple[list[dict], str | None]:
    """The messages (ending with the tutor's reply) and the reference of one labelled row."""
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a JSON object")
    msgs = value.get("messages", value.get("conversations"))
    if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) for m in msgs):
        raise DataError(f"{where}: messages: expected a non-empty list of objects")
    for i, m in enumerate(msgs):
        if m.get("role") not in ("system", "user", "assistant"):
            raise DataError(f"{where}: messages[{i}].role: expected system, user or assistant")
        if not isinstance(m.get("content"), str):
            raise DataError(f"{where}: messages[{i}].content: expected a string")
    if msgs[-1]["role"] != "assistant":
        raise DataError(f"{where}: messages: must end with the tutor's (assistant) reply")
    ref = value.get("reference_answer")
    if ref is not None and not isinstance(ref, str | int | float):
        raise DataError(f"{where}: reference_answer: expected a string, a number or null")
    return msgs, None if ref is None else str(ref)


def iter_reply_rows(paths: list[str | Path]) -> Iterator[tuple[str, dict, list[dict], str | None]]:
    """(file, row, messages, reference) for every row of `paths`: DataError names the first bad
    row (file:line and field), or the files when they hold no row."""
    empty = True
    for path in paths:
        for row in read_rows(path):
            if row.error:
                raise DataError(f"{row.where}: {row.error}")
            msgs, ref = parse_reply_row(row.value, row.where)
            empty = False
            yield str(path), row, msgs, ref
    if empty:
        raise DataError(f"{', '.join(map(str, paths))}: no rows")


def read_labelled(paths: list[str | Path]) -> list[LabelledReply]:
    """Every row of `paths`; DataError names the first bad row (file:line and field)."""
    rows = []
    for _, row, msgs, ref in iter_reply_rows(paths):
        if "label" not in row.value:
            raise DataError(f"{row.where}: label: missing (the human judgement, true/false)")
        label = parse_label(row.value["label"], row.where)
        rows.append(LabelledReply(row.where, str(row.value.get("id", row.where)), msgs, ref,
                                  label))  # fmt: skip
    return rows


def leak_agreement(rows: list[LabelledReply]) -> tuple[dict[str, Confusion], dict[str, list[int]]]:
    """The confusions of the three predictors and, per detector rule, [fired, right]."""
    results = {name: Confusion() for name in PREDICTORS}
    by_rule: dict[str, list[int]] = {}
    for row in rows:
        reveal = find_reveal(row.messages, row.reference)
        blind = find_reveal(row.messages, None)
        reply = row.messages[-1]["content"]
        example = {"where": row.where, "id": row.id, "reply": reply,
                   "rule": reveal.rule if reveal else None, "span": reveal.span if reveal else None}  # fmt: skip
        results["detector"].add(reveal is not None, row.label, example)
        results["detector, no reference"].add(blind is not None, row.label, example)
        naive = mentions_reference_number(reply, row.reference)
        results["reference number in reply"].add(naive, row.label, example)
        if reveal:
            counts = by_rule.setdefault(reveal.rule, [0, 0])
            counts[0] += 1
            counts[1] += row.label
    return results, by_rule


def format_leak(
    rows: list[LabelledReply],
    results: dict[str, Confusion],
    by_rule: dict[str, list[int]],
    examples: int = 0,
) -> str:
    """The agreement tables as text, plus `examples` random misses and false alarms."""
    with_ref = sum(1 for r in rows if r.reference)
    lines = [f"{len(rows)} replies, {sum(r.label for r in rows)} labelled reveals, "
             f"{with_ref} with a reference answer"]  # fmt: skip
    lines += prf_table("predictor", results, 28)
    d = results["detector"]
    lines += confusion_lines(d, "reveals", 26)
    lines.append(f"\n{'rule':12} {'fired':>6} {'right':>6}")
    for rule, (fired, right) in sorted(by_rule.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"{rule:12} {fired:>6} {right:>6}")
    rng = random.Random(0)
    for kind, pool in (("missed", d.misses), ("false alarm", d.false_alarms)):
        for ex in rng.sample(pool, min(examples, len(pool))):
            why = f" [{ex['rule']}: {ex['span']!r}]" if ex["rule"] else ""
            lines.append(f"[{kind}] {ex['id']}{why}: {ex['reply'][:200]!r}")
    return "\n".join(lines)
