"""Agreement of the offline metrics (`tutor.metrics`) with MathDial's human move labels.

MathDial (Macina et al., 2023) labels every teacher turn as focus, probing, telling or generic.
`reveals_answer` is compared with "telling" and `asks_question` with focus+probing, turn by turn,
each turn scored with the earlier turns as its context and the problem's final answer as the
reference; the naive baseline "the turn contains the reference answer's number" is compared with
"telling" too. Convert the raw file first with the project's importer (it keeps the labels):

    socratic data convert mathdial/test.jsonl --format mathdial --out md.jsonl
    socratic eval mathdial-agreement md.jsonl [--examples 5]
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from tutor.importers import import_record
from tutor.io import DataError, read_rows
from tutor.metrics import reveals_answer, score_response
from tutor.numbers import number_mentions
from tutor.schema import SchemaError

_STEP_RESULT = re.compile(r"=\s*\$?\s*(-?[\d,]*\.?\d+(?:/\d+)?)")


@dataclass
class Confusion:
    """Counts of a binary metric against a binary human label."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    misses: list[dict] = field(default_factory=list)  # label true, metric false
    false_alarms: list[dict] = field(default_factory=list)  # metric true, label false

    def add(self, predicted: bool, actual: bool, example: dict) -> None:
        if predicted and actual:
            self.tp += 1
        elif predicted:
            self.fp += 1
            self.false_alarms.append(example)
        elif actual:
            self.fn += 1
            self.misses.append(example)
        else:
            self.tn += 1

    def summary(self) -> dict:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        n = self.tp + self.fp + self.fn + self.tn
        return {
            "n": n,
            "positives": self.tp + self.fn,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": round(p, 3),
            "recall": round(r, 3),
            "f1": round(f1, 3),
            "accuracy": round((self.tp + self.tn) / n, 3) if n else 0.0,
        }


def prf_table(title: str, results: dict[str, Confusion], width: int) -> list[str]:
    """Lines of a table: per predictor n, positives, tp, fp, fn, tn, precision, recall, F1."""
    lines = [f"\n{title:{width}} {'n':>5} {'pos':>5} {'tp':>5} {'fp':>5} {'fn':>5} {'tn':>5} "
             f"{'P':>6} {'R':>6} {'F1':>6}"]  # fmt: skip
    for name, conf in results.items():
        s = conf.summary()
        lines.append(f"{name:{width}} {s['n']:>5} {s['positives']:>5} {s['tp']:>5} {s['fp']:>5} "
                     f"{s['fn']:>5} {s['tn']:>5} {s['precision']:>6.3f} {s['recall']:>6.3f} "
                     f"{s['f1']:>6.3f}")  # fmt: skip
    return lines


def confusion_lines(d: Confusion, positive: str, width: int) -> list[str]:
    """The detector's 2x2 confusion against the human label (`positive`: the positive class)."""
    head = f"human: {positive}"
    return [f"\n{'confusion (detector)':{width}}{head}   human: does not",
            f"{'detector: ' + positive:{width}}{d.tp:>{len(head)}} {d.fp:>17}",
            f"{'detector: does not':{width}}{d.fn:>{len(head)}} {d.tn:>17}"]  # fmt: skip


def mentions_reference_number(reply: str, reference: str | None) -> bool:
    """The naive baseline: the reply contains the reference answer's number (any form), or its
    words for a text answer. False without a reference."""
    if not reference or not reference.strip():
        return False
    values = {v for v, _ in number_mentions(reference)}
    if values:
        return bool(values & {v for v, _ in number_mentions(reply)})
    return re.search(rf"\b{re.escape(reference.strip())}\b", reply, re.I) is not None


def teacher_turns(record: dict):
    """(messages up to and including a labelled teacher turn, its move labels, reference)."""
    msgs = record.get("conversations") or record.get("messages") or []
    meta = record.get("meta") or {}
    moves = meta.get("moves") or []
    reference = meta.get("reference_answer")
    assistant_positions = [i for i, m in enumerate(msgs) if m.get("role") == "assistant"]
    for pos, move in zip(assistant_positions, moves, strict=False):
        labels = set(move.split("+"))
        if labels == {"unlabelled"}:
            continue
        yield msgs[: pos + 1], labels, reference


def agreement(path: str | Path) -> tuple[dict[str, Confusion], dict[str, list[int]], int]:
    """Confusions of the metrics against the labels, per-label rates, and the dialogue count.

    Reads converted rows (with meta.moves) or raw MathDial rows; raw rows also give the worked
    solution, whose intermediate results are checked too (`reveals_any_step`), because MathDial's
    "telling" covers revealing any step, not only the final answer.
    """
    results = {
        "reveals_answer~telling": Confusion(),
        "reference_number~telling": Confusion(),
        "asks_question~focus+probing": Confusion(),
        "reveals_any_step~telling": Confusion(),
    }
    by_label: dict[str, list[int]] = {}  # label -> [turns, asks_question, reveals_answer]
    dialogues = 0
    for row in read_rows(path):
        if row.error:
            raise DataError(f"{row.where}: {row.error}")
        record, steps = _converted(row.value, row.where)
        dialogues += 1
        for msgs, labels, reference in teacher_turns(record):
            metrics = score_response(msgs, reference)
            example = {
                "where": row.where,
                "labels": sorted(labels),
                "reference": reference,
                "turn": msgs[-1]["content"],
            }
            results["reveals_answer~telling"].add(
                bool(metrics["reveals_answer"]), "telling" in labels, example
            )
            naive = mentions_reference_number(msgs[-1]["content"], reference)
            results["reference_number~telling"].add(naive, "telling" in labels, example)
            results["asks_question~focus+probing"].add(
                metrics["asks_question"], bool(labels & {"focus", "probing"}), example
            )
            if steps:
                context = "\n".join(m["content"] for m in msgs[:-1] if m["role"] != "system")
                step = any(reveals_answer(msgs[-1]["content"], v, context) for v in steps)
                results["reveals_any_step~telling"].add(step, "telling" in labels, example)
            for label in labels:
                counts = by_label.setdefault(label, [0, 0, 0])
                counts[0] += 1
                counts[1] += metrics["asks_question"]
                counts[2] += bool(metrics["reveals_answer"])
    if not results["reveals_any_step~telling"].summary()["n"]:
        del results["reveals_any_step~telling"]
    return results, by_label, dialogues


def _converted(value: object, where: str) -> tuple[dict, list[str]]:
    """A converted record and the worked solution's step results (raw MathDial rows only)."""
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a JSON object")
    if "conversation" in value:  # raw MathDial: convert with the project's importer
        try:
            record = import_record(value, "mathdial")
        except SchemaError as e:
            raise DataError(f"{where}: {e}") from None
        return record, _STEP_RESULT.findall(str(value.get("ground_truth") or ""))
    if "moves" not in (value.get("meta") or {}):
        raise DataError(f"{where}: no meta.moves (convert with --format mathdial)")
    return value, []


def format_agreement(
    results: dict[str, Confusion],
    by_label: dict[str, list[int]],
    dialogues: int,
    examples: int = 0,
) -> str:
    """Plain-text tables (plus `examples` random misses and false alarms per metric)."""
    lines = [f"{dialogues} dialogues", f"{'metric ~ label':32} {'n':>6} {'pos':>5} "
             f"{'P':>6} {'R':>6} {'F1':>6} {'acc':>6}"]  # fmt: skip
    for name, conf in results.items():
        s = conf.summary()
        lines.append(
            f"{name:32} {s['n']:>6} {s['positives']:>5} {s['precision']:>6.3f} "
            f"{s['recall']:>6.3f} {s['f1']:>6.3f} {s['accuracy']:>6.3f}"
        )
    lines.append(f"\n{'human label':12} {'turns':>6} {'asks_question':>14} {'reveals_answer':>15}")
    for label, (n, asks, reveals) in sorted(by_label.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"{label:12} {n:>6} {asks / n:>14.1%} {reveals / n:>15.1%}")
    rng = random.Random(0)
    for name, conf in results.items():
        for kind, pool in (("missed", conf.misses), ("false alarm", conf.false_alarms)):
            for ex in rng.sample(pool, min(examples, len(pool))):
                lines.append(
                    f"[{name} {kind}] {ex['where']} {'+'.join(ex['labels'])} "
                    f"ref={ex['reference']!r}: {ex['turn'][:200]!r}"
                )
    return "\n".join(lines)
