"""`socratic eval claim-agreement FILE... [--by-file]`: the verdict detector against human labels.

    socratic eval claim-agreement data/claims/written-test.jsonl --by-file

Each row is one tutor reply to a student's claim, with a human label: `{"messages": [... ending
with the tutor's reply], "reference_answer": str | null (optional), "claim": "right" | "wrong" |
"none", "label": true | false | null}`: `claim` says whether the student's last turn states a right
or a wrong answer or belief (or none), `label` whether the reply accepts it (null exactly when
`claim` is "none"). The format and the labelling guide are in data/claims/README.md.

The positive class is "the reply accepts a wrong claim" (the tutor misses the mistake). Three
predictors are compared with it: the detector (`tutor.verdict.accepts_student_claim` on a row
whose claim is wrong by its label), the naive opener rule (the reply starts with yes / correct /
great / right / exactly ... and has no correction cue), and `affirms_wrong` as `socratic eval score`
computes it (the detector, with the claim judged against the reference by `tutor.claim`: it only
fires where that comparison is possible). Prints P/R/F1, the confusion table, the detector's
agreement on every claim (accepts or not), its answers on turns without a claim (None, never
False), and what each rule got right.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from evaluation.agreement import Confusion, confusion_lines, prf_table
from evaluation.leak import iter_reply_rows, parse_label
from tutor.claim import student_claim_correct
from tutor.io import DataError
from tutor.verdict import accepts_student_claim

CLAIMS = ("right", "wrong", "none")
PREDICTORS = ("detector", "opener baseline", "affirms_wrong (with reference)")
# The baseline of the literature: an affirming opener and no correction cue anywhere.
_OPENER = re.compile(
    r"^\W*(?:yes|yeah|yep|correct|great|good|right|exactly|perfect|excellent|well\s+done|nice|"
    r"awesome|spot\s+on|that'?s\s+(?:right|correct|it))\b",
    re.I,
)
_CUE = re.compile(
    r"\b(?:not|no|but|however|although|though|actually|wrong|incorrect|mistake|error|almost|"
    r"close|careful|check|sure|again|instead|hmm)\b|n't\b",
    re.I,
)


@dataclass(frozen=True)
class ClaimReply:
    """One human-labelled tutor reply to a student's turn."""

    where: str  # file:line
    id: str
    file: str
    messages: list[dict]
    reference: str | None
    claim: str  # right | wrong | none
    label: bool | None  # the reply accepts the claim; None when there is no claim


def opener_rule(reply: str) -> bool:
    """The naive baseline: an affirming opener and no correction cue in the reply."""
    return bool(_OPENER.match(reply)) and not _CUE.search(reply)


def _student_turn(messages: list[dict]) -> str:
    turns = [m["content"] for m in messages[:-1] if m.get("role") == "user"]
    return turns[-1] if turns else ""


def read_claim_rows(paths: list[str | Path]) -> list[ClaimReply]:
    """Every row of `paths`; DataError names the first bad row (file:line and field)."""
    rows = []
    for path, row, msgs, ref in iter_reply_rows(paths):
        claim = row.value.get("claim")
        if claim not in CLAIMS:
            raise DataError(f"{row.where}: claim: expected one of {', '.join(CLAIMS)}, "
                            f"got {claim!r}")  # fmt: skip
        if "label" not in row.value:
            raise DataError(f"{row.where}: label: missing (does the reply accept the claim)")
        raw = row.value["label"]
        if claim == "none":
            if raw is not None:
                raise DataError(f"{row.where}: label: expected null for a turn without a claim")
            label = None
        elif raw is None:
            raise DataError(f"{row.where}: label: null only when claim is none")
        else:
            label = parse_label(raw, row.where)
        rows.append(ClaimReply(row.where, str(row.value.get("id", row.where)), path, msgs, ref,
                               claim, label))  # fmt: skip
    return rows


def claim_agreement(rows: list[ClaimReply]) -> dict:
    """Confusions for "accepts a wrong claim" (per predictor), for "accepts" on every claim, the
    detector's answers on turns without a claim, and per rule [fired, right]."""
    wrong = {name: Confusion() for name in PREDICTORS}
    accepts = {"detector": Confusion(), "opener baseline": Confusion()}
    no_claim = {"none": 0, "true": 0, "false": 0}
    by_rule: dict[str, list[int]] = {}
    for row in rows:
        student, reply = _student_turn(row.messages), row.messages[-1]["content"]
        verdict = accepts_student_claim(student, reply)
        example = {"where": row.where, "id": row.id, "reply": reply, "rule": verdict.rule,
                   "span": verdict.span}  # fmt: skip
        if row.claim == "none":
            no_claim[str(verdict.accepts).lower()] += 1
            continue
        said, naive = verdict.accepts is True, opener_rule(reply)
        counts = by_rule.setdefault(verdict.rule, [0, 0])
        counts[0] += 1
        counts[1] += (verdict.accepts is not None) and said == row.label
        accepts["detector"].add(said, row.label, example)
        accepts["opener baseline"].add(naive, row.label, example)
        is_wrong = row.claim == "wrong"
        actual = is_wrong and row.label
        wrong["detector"].add(said and is_wrong, actual, example)
        wrong["opener baseline"].add(naive and is_wrong, actual, example)
        judged = student_claim_correct(student, row.reference) is False
        wrong["affirms_wrong (with reference)"].add(said and judged, actual, example)
    return {"accepts_wrong": wrong, "accepts": accepts, "no_claim": no_claim, "by_rule": by_rule}


def format_claims(rows: list[ClaimReply], result: dict, examples: int = 0) -> str:
    """The agreement tables as text, plus `examples` random misses and false alarms."""
    n = {c: sum(r.claim == c for r in rows) for c in CLAIMS}
    wrong_accepted = sum(bool(r.label) for r in rows if r.claim == "wrong")
    lines = [f"{len(rows)} replies: {n['wrong']} to wrong claims ({wrong_accepted} accept them), "
             f"{n['right']} to right claims, {n['none']} to turns without a claim"]  # fmt: skip
    lines += prf_table('"accepts a wrong claim"', result["accepts_wrong"], 32)
    d = result["accepts_wrong"]["detector"]
    lines += confusion_lines(d, "accepts wrong", 28)
    lines += prf_table('"accepts the claim" (any claim)', result["accepts"], 32)
    nc = result["no_claim"]
    lines.append(f"\nturns without a claim: detector None {nc['none']}, True {nc['true']}, "
                 f"False {nc['false']}")  # fmt: skip
    lines.append(f"\n{'rule':14} {'fired':>6} {'right':>6}")
    for rule, (fired, right) in sorted(result["by_rule"].items(), key=lambda kv: -kv[1][0]):
        lines.append(f"{rule:14} {fired:>6} {right:>6}")
    rng = random.Random(0)
    for kind, pool in (("missed", d.misses), ("false alarm", d.false_alarms)):
        for ex in rng.sample(pool, min(examples, len(pool))):
            lines.append(f"[{kind}] {ex['id']} [{ex['rule']}: {ex['span']!r}]: "
                         f"{ex['reply'][:200]!r}")  # fmt: skip
    return "\n".join(lines)


def summary(result: dict) -> dict:
    """The numbers of `claim_agreement` as plain JSON-ready dicts."""
    return {
        "accepts_wrong": {k: c.summary() for k, c in result["accepts_wrong"].items()},
        "accepts": {k: c.summary() for k, c in result["accepts"].items()},
        "no_claim": result["no_claim"],
        "by_rule": result["by_rule"],
    }
