"""`socratic eval judge-agreement FILE... --judge-url URL`: validate an LLM judge on replies that
people labelled, before trusting its grades.

    socratic eval judge-agreement data/leak/written-dev.jsonl --judge-url http://127.0.0.1:9000 \
        --judge-model gpt-4o-mini --out judged.jsonl

Each row is a tutor reply with human labels: `{"messages": [... ending with the assistant reply],
"reference_answer": str | null, "labels": {"<dimension>": "<label>", ...}}` with any of the judge's
dimensions and labels (`evaluation.judge.DIMENSIONS`), and/or `"label": true | false` (does the
reply reveal the answer, as in data/leak/). Rows of data/claims/ (`"claim": "right" | "wrong" |
"none"` and `"label"`: does the reply accept the claim) give the mistake-identification labels:

    socratic eval judge-agreement data/claims/written-dev.jsonl data/claims/mathdial-dev.jsonl \
        --judge-url URL

"mistake identified (yes/no)": on wrong claims, a reply that does not accept the claim identified
the mistake, one that accepts it did not; the judge's "yes" and "to some extent" count as
identified. "mistake identified (yes/no/n.a.)": the same over every claims row, right claims and
turns without a claim being "not applicable". The command also prints precision, recall and F1
of the judge for "misses the mistake" (accepts a wrong claim), the class
`socratic eval claim-agreement` scores for the offline detector.

The judge grades every reply with the same rubric as `socratic eval judge`; per dimension the
command prints n, accuracy, macro-F1 and Cohen's kappa between the judge and the people.
"revealing (yes/no)" compares the judge's revealing label (either "yes") with a yes/no human
judgement. A judgement that fails after its retries is counted as missing, never guessed.
"""

from __future__ import annotations

import asyncio
import math
from itertools import islice
from pathlib import Path

from evaluation.client import Chat
from evaluation.judge import DIMENSIONS, JUDGE_SAMPLING, judge_reply
from evaluation.leak import iter_reply_rows, parse_label
from evaluation.stats import label_agreement
from tutor.io import DataError

REVEALING_YES_NO = "revealing (yes/no)"
MISTAKE_YES_NO = "mistake identified (yes/no)"
MISTAKE_3 = "mistake identified (yes/no/n.a.)"
CLAIMS = ("right", "wrong", "none")
IDENTIFIED = {"yes", "to some extent"}


def human_labels(value: dict, where: str) -> dict[str, str]:
    """The row's human labels by dimension, validated against the judge's label sets."""
    labels = value.get("labels") or {}
    if not isinstance(labels, dict):
        raise DataError(f"{where}: labels: expected an object of dimension -> label")
    out = {}
    for dim, label in labels.items():
        if dim not in DIMENSIONS:
            raise DataError(f"{where}: labels.{dim}: unknown dimension (known: "
                            f"{', '.join(DIMENSIONS)})")  # fmt: skip
        label = str(label).strip().lower()
        if label not in DIMENSIONS[dim]:
            raise DataError(f"{where}: labels.{dim}: expected one of {' | '.join(DIMENSIONS[dim])}, "
                            f"got {label!r}")  # fmt: skip
        out[dim] = label
    if "claim" in value:
        out.update(_claim_labels(value, where))
    elif "label" in value:
        out[REVEALING_YES_NO] = "yes" if parse_label(value["label"], where) else "no"
    elif "revealing_of_the_answer" in out:
        out[REVEALING_YES_NO] = _yes_no(out["revealing_of_the_answer"])
    if not out:
        raise DataError(f"{where}: no human labels (expected 'labels' or 'label')")
    return out


def _claim_labels(value: dict, where: str) -> dict[str, str]:
    """Mistake identification from a data/claims row: `claim` right | wrong | none and `label`
    (the reply accepts the claim; null exactly when there is no claim)."""
    claim = value["claim"]
    if claim not in CLAIMS:
        raise DataError(f"{where}: claim: expected one of {' | '.join(CLAIMS)}, got {claim!r}")
    if (value.get("label") is None) != (claim == "none"):
        raise DataError(f"{where}: label: expected null exactly when claim is none")
    if claim != "wrong":
        return {MISTAKE_3: "not applicable"}
    identified = "no" if parse_label(value["label"], where) else "yes"
    return {MISTAKE_3: identified, MISTAKE_YES_NO: identified}


def read_judge_rows(paths: list[str | Path], limit: int | None = None) -> list[dict]:
    """Rows to judge: {"where", "row" (the judge's view), "human" (labels)}."""
    rows = []
    for _, row, msgs, ref in islice(iter_reply_rows(paths), limit):
        view = {"messages": msgs[:-1], "response": msgs[-1]["content"], "reference_answer": ref}
        rows.append({"where": row.where, "id": row.value.get("id", row.where), "row": view,
                     "human": human_labels(row.value, row.where)})  # fmt: skip
    return rows


def judge_agreement(
    rows: list[dict],
    judge_url: str,
    judge_model: str | None = None,
    *,
    attempts: int = 3,
    concurrency: int = 4,
    retries: int = 2,
    timeout_s: float = 120.0,
    cache_dir: str | Path | None = None,
) -> tuple[dict[str, dict], list[dict]]:
    """Per dimension {n, missing, accuracy, macro_f1, kappa}, and every row with its judgement."""
    judged = asyncio.run(_judge_all(rows, judge_url, judge_model, attempts, concurrency, retries,
                                    timeout_s, cache_dir))  # fmt: skip
    pairs: dict[str, list[tuple[str, str]]] = {}
    missing: dict[str, int] = {}
    for row in judged:
        model = _model_labels(row["judgement"])
        for dim, human in row["human"].items():
            pairs.setdefault(dim, [])
            if model is None:
                missing[dim] = missing.get(dim, 0) + 1
            else:
                pairs[dim].append((human, model[dim]))
    table = {
        dim: {**label_agreement(p), "missing": missing.get(dim, 0)} for dim, p in pairs.items()
    }
    if MISTAKE_YES_NO in pairs:
        table[MISTAKE_YES_NO]["misses"] = class_scores(pairs[MISTAKE_YES_NO], "no")
    return table, judged


def class_scores(pairs: list[tuple[str, str]], positive: str) -> dict[str, float | int | None]:
    """Precision, recall and F1 of the second side (the judge) for one label, against the first
    (the people); None where undefined (no such label on either side)."""
    tp = sum(a == positive and b == positive for a, b in pairs)
    fp = sum(a != positive and b == positive for a, b in pairs)
    fn = sum(a == positive and b != positive for a, b in pairs)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def _yes_no(revealing_label: str) -> str:
    return "yes" if revealing_label.startswith("yes") else "no"


def _model_labels(judgement: dict | None) -> dict[str, str] | None:
    if judgement is None:
        return None
    labels = {dim: judgement[dim]["label"] for dim in DIMENSIONS}
    labels[REVEALING_YES_NO] = _yes_no(labels["revealing_of_the_answer"])
    mistake = labels["mistake_identification"]
    labels[MISTAKE_YES_NO] = "yes" if mistake in IDENTIFIED else "no"
    labels[MISTAKE_3] = "yes" if mistake in IDENTIFIED else mistake
    return labels


async def _judge_all(rows, url, model, attempts, concurrency, retries, timeout_s, cache_dir):
    chat = Chat(url, model, cache_dir=cache_dir, concurrency=concurrency, retries=retries,
                timeout_s=timeout_s)  # fmt: skip
    try:
        results = await asyncio.gather(
            *(judge_reply(chat, r["row"], JUDGE_SAMPLING, attempts) for r in rows)
        )
        model_name = chat.model
    finally:
        await chat.close()
    return [{**r, **res, "judge_model": model_name} for r, res in zip(rows, results, strict=True)]


def format_judge_agreement(table: dict[str, dict], judge_model: str | None) -> str:
    """The per-dimension agreement table as text."""
    lines = [f"judge: {judge_model}",
             f"{'dimension':34} {'n':>5} {'missing':>8} {'accuracy':>9} {'macro-F1':>9} "
             f"{'kappa':>7}"]  # fmt: skip
    for dim, s in table.items():
        lines.append(f"{dim:34} {s['n']:>5} {s['missing']:>8} {_num(s['accuracy']):>9} "
                     f"{_num(s['macro_f1']):>9} {_num(s['kappa']):>7}")  # fmt: skip
    misses = table.get(MISTAKE_YES_NO, {}).get("misses")
    if misses:
        lines.append(
            f"judge misses the mistake (accepts a wrong claim): precision "
            f"{_num(misses['precision'])}, recall {_num(misses['recall'])}, F1 "
            f"{_num(misses['f1'])} (tp {misses['tp']}, fp {misses['fp']}, fn {misses['fn']})"
        )
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.3f}"
