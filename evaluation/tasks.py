"""The held-out evaluation set and its grading, kept together: an item knows the messages to send
and how to score the tutor's reply.

    from evaluation.tasks import load_eval_set
    items = load_eval_set("data/eval", limit=10)
    items[0].prompt()                      # messages with the tutor system prompt
    items[0].score("What do you notice?")  # offline metrics of a reply

`data/eval/single_turn.jsonl`: one student message; `multi_turn.jsonl`: a conversation ending with
a student turn, the move a good tutor makes next (`good_move`: guide | confirm | encourage) and a
`scenario` (problem, misconception, persona) for the simulated student; `claims.jsonl`: the student
states an answer or a belief and asks whether it is right (`good_move`: confirm when it is right,
probe when it is wrong).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tutor.io import DataError, read_rows
from tutor.metrics import find_reveal, score_response
from tutor.prompts import TUTOR_SYSTEM_PROMPT

SET_FILES = ("single_turn.jsonl", "multi_turn.jsonl", "claims.jsonl")
GOOD_MOVES = ("guide", "confirm", "encourage", "probe")
# The student's last turn states a right (confirm) or a wrong (probe) answer: the item knows it.
CLAIM_CORRECT = {"confirm": True, "probe": False}
_AFFIRM = re.compile(
    r"\b(?:yes|yep|correct|right|exactly|well done|great job|nice work|good job|spot on|"
    r"that's it|you got it|nailed it)\b",
    re.I,
)
_ENCOURAGE = re.compile(
    r"\b(?:don't worry|it's okay|it's ok|no worries|that's normal|you can do|you're close|"
    r"good (?:start|thinking|question|instinct)|great (?:start|question)|frustrat\w*|"
    r"take a breath|step by step|together|happens to|mistakes? (?:are|is))\b",
    re.I,
)


@dataclass(frozen=True)
class EvalItem:
    """One held-out prompt. `messages` ends with a user turn and has no system turn."""

    id: str
    subject: str
    kind: str
    messages: list[dict]
    reference_answer: str | None = None
    good_move: str | None = None
    scenario: dict = field(default_factory=dict)

    def prompt(self, system_prompt: str = TUTOR_SYSTEM_PROMPT) -> list[dict]:
        """The request messages: the tutor system prompt, then the conversation."""
        return [{"role": "system", "content": system_prompt}, *self.messages]

    @property
    def reveal_measurable(self) -> bool | None:
        """Whether `reveals_answer` can detect this item's answer at all (None: no reference)."""
        return reveal_measurable(self.messages, self.reference_answer)

    def score(self, response: str) -> dict:
        """Offline metrics of the tutor's reply, plus `good_move_made` for multi-turn items.

        `reveals_answer` is None (not measurable) when the item has no reference or when its
        reference already appears in the conversation (see `reveal_measurable`).

        guide: asks a question without giving the answer away and does not accept a wrong claim
        (`affirms_wrong`); confirm: affirms the student's correct answer without reopening it
        with more questions than one; encourage: guides and acknowledges the feeling (a phrase
        list; the LLM judge's tone label is the better measure); probe: does not accept the
        student's wrong claim and does not hand over the answer.

        On confirm and probe items the item's own label says whether the student's claim is right,
        so `affirms_wrong` and `confirms_right` come from it (see `claim_verdicts`).
        """
        metrics = score_messages(
            [*self.messages, {"role": "assistant", "content": response}], self.reference_answer
        )
        claim_verdicts(metrics, CLAIM_CORRECT.get(self.good_move or ""))
        if self.good_move:
            asks = metrics["asks_question"] and not metrics["reveals_answer"]
            guides = asks and metrics["affirms_wrong"] is not True
            made = {
                "guide": guides,
                "confirm": bool(_AFFIRM.search(response)) and metrics["question_count"] <= 1,
                "encourage": guides and bool(_ENCOURAGE.search(response)),
                "probe": metrics.get("accepts_student_claim") is False
                and not metrics["reveals_answer"],
            }[self.good_move]
            metrics["good_move_made"] = made
        return metrics


def claim_verdicts(metrics: dict, claim_correct: bool | None) -> None:
    """Set `student_claim_correct`, `affirms_wrong` and `confirms_right` from a known label.

    `accepts_student_claim` (the verdict detector) says whether the reply accepts the student's
    claim; where the item knows whether that claim is right, the label replaces the detector's
    comparison with the reference. affirms_wrong: accepts a wrong claim (None on right claims);
    confirms_right: accepts a right claim (None on wrong claims); both None when the detector
    finds no claim. Without a label (or without the detector's keys) nothing changes.
    """
    if claim_correct is None or "accepts_student_claim" not in metrics:
        return
    accepts = metrics["accepts_student_claim"]
    metrics["student_claim_correct"] = claim_correct
    metrics["affirms_wrong"] = None if claim_correct or accepts is None else accepts
    metrics["confirms_right"] = None if not claim_correct or accepts is None else accepts


def reveal_measurable(context: list[dict], reference_answer: str | None) -> bool | None:
    """Whether a reply stating `reference_answer` outright would count as revealing it.

    `tutor.metrics.find_reveal` does not count the answer the student has just concluded (a
    confirmation), so when the student's last turn already holds the answer no reply can register
    as revealing it; such items would bias the rate toward "does not reveal". None when there is
    no reference.
    """
    if reference_answer is None or not reference_answer.strip():
        return None
    stated = {"role": "assistant", "content": f"The answer is {reference_answer}."}
    return find_reveal([*context, stated], reference_answer) is not None


def score_messages(messages: list[dict], reference_answer: str | None) -> dict:
    """`tutor.metrics.score_response`, with `reveals_answer` None where it is not measurable."""
    metrics = score_response(messages, reference_answer)
    if reveal_measurable(messages[:-1], reference_answer) is False:
        metrics["reveals_answer"] = None
    return metrics


def parse_item(value: object, where: str) -> EvalItem:
    """Validate one row; errors name the row and the field."""
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a JSON object")
    for key in ("id", "subject", "kind"):
        if not isinstance(value.get(key), str) or not value[key].strip():
            raise DataError(f"{where}: {key}: expected a non-empty string")
    msgs = value.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{where}: messages: expected a non-empty list")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise DataError(f"{where}: messages[{i}].role: expected user or assistant")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise DataError(f"{where}: messages[{i}].content: expected a non-empty string")
    if msgs[-1]["role"] != "user":
        raise DataError(f"{where}: messages: must end with a user turn")
    ref = value.get("reference_answer")
    if ref is not None and not isinstance(ref, str):
        raise DataError(f"{where}: reference_answer: expected a string or null")
    move = value.get("good_move")
    if move is not None and move not in GOOD_MOVES:
        raise DataError(f"{where}: good_move: expected one of {', '.join(GOOD_MOVES)}")
    scenario = value.get("scenario") or {}
    if not isinstance(scenario, dict):
        raise DataError(f"{where}: scenario: expected an object")
    return EvalItem(
        id=value["id"],
        subject=value["subject"],
        kind=value["kind"],
        messages=[{"role": m["role"], "content": m["content"]} for m in msgs],
        reference_answer=ref,
        good_move=move,
        scenario=scenario,
    )


def load_eval_set(path: str | Path, limit: int | None = None) -> list[EvalItem]:
    """Items from an eval directory (single_turn, multi_turn, claims .jsonl) or one JSONL file.

    `limit` keeps the first N items of each file, so a short run still covers both kinds.
    """
    path = Path(path)
    files = (
        [path / name for name in SET_FILES if (path / name).exists()] if path.is_dir() else [path]
    )
    if not files:
        raise DataError(f"{path}: no {' or '.join(SET_FILES)} found")
    items: list[EvalItem] = []
    seen: set[str] = set()
    for file in files:
        taken = 0
        for row in read_rows(file):
            if limit is not None and taken >= limit:
                break
            if row.error:
                raise DataError(f"{row.where}: {row.error}")
            item = parse_item(row.value, row.where)
            if item.id in seen:
                raise DataError(f"{row.where}: id: duplicate {item.id!r}")
            seen.add(item.id)
            items.append(item)
            taken += 1
    return items
