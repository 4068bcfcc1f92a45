"""Is the student's claim right? The value the student states, against the reference answer,
through `tutor.numbers` (exact values: 3/4 = 0.75 = 75%, "three quarters"). Used by
`tutor.metrics.score_response` (`student_claim_correct`, `affirms_wrong`, `confirms_right`).

    from tutor.claim import student_claim_correct
    student_claim_correct("I solved 2x + 6 = 14 and got x = 10. Did I get it?", "x = 4")  # False
    student_claim_correct("The square root of 81 is 9, right?", "9")                     # True
    student_claim_correct("How do I start?", "9")                                        # None

The stated value is the one the student concludes: after "I got", "the answer is", "=", or
"is" ("The square root of 81 is 8, yes?"), or a claim that is little more than a number ("so 24?");
a number the student only mentions ("I've done 20 of these") is not their answer.
A number reference is matched by value (a percent also as its fraction, a decimal within 1% of
a non-integer reference); an expression or a word reference counts as right when the claim
states it, and is not comparable (None) otherwise: a wrong word answer cannot be told from a
right one written differently. None too when the student's turn makes no claim or states no
value.
"""

from __future__ import annotations

import re
from fractions import Fraction

from tutor.numbers import find_numbers, normalise
from tutor.verdict import claim_sentences, student_claim

_NUM = r"-?\$?\s?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?(?:\s?%|\s+percent\b)?"
_STATED = re.compile(
    rf"(?:\bi\s+(?:got|get|found|have|calculated|think\s+(?:it'?s|it\s+is)?)|\banswer\s+(?:is|was|"
    rf"=|:)|\bresult\s+(?:is|was)|=|\bequals?|\bis|\bare|\bmakes?|\bgives?|\bleaves?|\bit'?s)\s*"
    rf"(?:about\s+|exactly\s+|just\s+)?(?P<x>{_NUM})",
    re.I,
)


def stated_value(student_turn: str) -> Fraction | None:
    """The value the student concludes in `student_turn` (see the module docstring), or None."""
    for claim in reversed(claim_sentences(student_turn)):
        stated = [m["x"] for m in _STATED.finditer(normalise(claim))]
        if not stated and len(re.findall(r"[A-Za-z]{2,}", claim)) <= 3:
            stated = [claim]  # "13?", "so 24?", "x = 5": the claim is the value
        numbers = find_numbers(stated[-1]) if stated else []
        if numbers:
            return numbers[-1].value
    return None


def _same(a: Fraction, b: Fraction) -> bool:
    if a == b:
        return True
    return b.denominator != 1 and b != 0 and abs(a - b) <= abs(b) / 100


def _compact(text: str) -> str:
    return re.sub(r"[\s`*]+", "", normalise(text).lower())


def student_claim_correct(student_turn: str, reference: str | None) -> bool | None:
    """Whether the student's claim in `student_turn` matches `reference`; None when there is no
    claim, no reference, or nothing comparable (see the module docstring)."""
    if reference is None or not str(reference).strip() or student_claim(student_turn) is None:
        return None
    ref = re.sub(r"\^\d|[²³]", "", normalise(str(reference)).strip())  # cm^2: a unit, not a 2
    ref_numbers = find_numbers(ref)
    words = re.sub(r"\b[a-z]\s*=|[\d.,/%$()=+*-]|\s|percent", "", ref, flags=re.I)
    if len(ref_numbers) == 1 and len(words) <= 12:  # one number, a variable or a short unit
        value = stated_value(student_turn)
        if value is None:
            return None
        target = ref_numbers[0]
        targets = {target.value}
        if target.form == "pct":
            targets.add(target.value / 100)
        elif "%" in student_turn or "percent" in student_turn.lower():
            targets.add(target.value * 100)
        return any(_same(value, t) for t in targets)
    claim = _compact(student_claim(student_turn) or "")
    return True if _compact(ref) and _compact(ref) in claim else None
