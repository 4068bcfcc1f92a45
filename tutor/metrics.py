"""Offline Socratic metrics: does a tutor response ask the student something, does it give the
answer away, and does it accept the student's claim as right? Pure standard-library heuristics (no model), shared by the data generator (to filter
dialogues) and the evaluation harness (`socratic eval score`, `... leak-agreement`).

    from tutor.metrics import find_reveal, score_response
    score_response([{"role": "user", "content": "What is 9 x 8? I got 63."},
                    {"role": "assistant", "content": "Actually, 9 x 8 = 72."}])
    # {..., "reveals_answer": True, "reveal": {"rule": "calculation", "span": "9 x 8 = 72"}, ...}

The rules live beside this module: questions in `tutor.questions`, reveals in `tutor.reveal`, the
verdict on the student's claim in `tutor.verdict` (and the claim against the reference in
`tutor.claim`); this module gathers them into one row of metrics.

Two answer checks, one built on the other:
- `find_reveal(messages, reference=None)`: the detector behind the `reveals_answer` metric. A reply
  reveals when it states a result the student has not produced (a calculation with its result, a
  result phrase, a declared answer, a value offered in a yes/no question), with or without a
  reference answer; it returns the rule and the words that fired.
- `reveals_answer(response, reference, context)`: whether the response states that reference
  answer (None without one); the detector's `reference` rule, and the data generator's check.

Decisions (their agreement with human labels is in docs/evaluation.md):
- A question is a sentence ending in '?' outside code and quotations, or an interrogative
  imperative ("Can you tell me...", "Walk me through...", "Tell me what...").
- An answer stated inside a question ("Is it 12?") counts as revealing: the student only has to
  say yes.
- A mention of the answer whose value *and* written form (integer/decimal, fraction, percent)
  already appear in the context (the problem, the student's own words) is a restatement, not a
  reveal: "0.375" in "Write 0.375 as a fraction" is not the answer 3/8, but "three eighths" is.
- A value the student wrote but did not conclude is revealed when the reply concludes with it
  ("so 14 is our required answer"); confirming the student's own conclusion never is.
"""

from __future__ import annotations

from tutor.claim import student_claim_correct
from tutor.numbers import number_mentions
from tutor.questions import asks_question, prose, question_count, words
from tutor.reveal import Reveal, find_reveal, reveals_answer
from tutor.verdict import Verdict, accepts_student_claim

__all__ = [
    "Reveal",
    "Verdict",
    "accepts_student_claim",
    "asks_question",
    "find_reveal",
    "number_mentions",
    "question_count",
    "reveals_answer",
    "score_response",
    "student_claim_correct",
    "words",
]


# ------------------------------------------------------------------ one response


def score_response(messages: list[dict], reference_answer: str | None = None) -> dict:
    """Offline metrics of the last message (the assistant response) given the earlier turns.

    Returns {"asks_question", "question_count", "reveals_answer", "reveal", "words",
    "ends_with_question", "accepts_student_claim", "verdict"}; `reveal` explains
    `reveals_answer` ({"rule", "span"}, or None), `verdict` explains `accepts_student_claim`
    (True/False, None when the student's last turn makes no claim; `tutor.verdict`); then
    "student_claim_correct" (the claim against the reference, `tutor.claim`; None without a
    reference or when not comparable), "affirms_wrong" (whether the reply accepts a wrong claim;
    None unless the claim is known wrong) and "confirms_right" (whether it accepts a right claim;
    None unless the claim is known right).
    """
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("messages: expected a list ending with the assistant response to score")
    response = str(messages[-1].get("content") or "")
    count = question_count(response)
    reveal = find_reveal(messages, reference_answer)
    student = _last_student_turn(messages)
    verdict = accepts_student_claim(student, response) if student is not None else None
    accepts = verdict.accepts if verdict else None
    metrics = {
        "asks_question": count > 0,
        "question_count": count,
        "reveals_answer": reveal is not None,
        "reveal": {"rule": reveal.rule, "span": reveal.span} if reveal else None,
        "words": words(response),
        "ends_with_question": prose(response).rstrip().endswith("?"),
        "accepts_student_claim": accepts,
        "verdict": {"rule": verdict.rule, "span": verdict.span} if verdict else None,
    }
    correct = student_claim_correct(student, reference_answer) if student else None
    known = correct is not None and accepts is not None
    metrics["student_claim_correct"] = correct
    metrics["affirms_wrong"] = accepts if known and correct is False else None
    metrics["confirms_right"] = accepts if known and correct is True else None
    return metrics


def _last_student_turn(messages: list[dict]) -> str | None:
    """The content of the last user turn before the reply (None when there is none)."""
    for m in reversed(messages[:-1]):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return None
