"""The verdict detector (`tutor.verdict.accepts_student_claim`) on hand-made turns: explicit and
build-on acceptance, probes, blunt and gentle corrections, restating a different result, a
lecture that leaves the claim aside; a student turn with no claim gives None, never False; every
verdict names its rule and span. Also `tutor.claim` (the claim against a reference) and the keys
`score_response` adds from them."""

from __future__ import annotations

import time

import pytest

from tutor.claim import stated_value, student_claim_correct
from tutor.metrics import score_response
from tutor.verdict import RULES, accepts_student_claim

WRONG_X = "I solved 2x + 6 = 14 and got x = 10. Did I get it?"
ROOT = "The square root of 81 is 8, yes?"
BELIEF = "I think 0.5 is smaller than 0.25 because 5 is smaller than 25. Is that right?"


@pytest.mark.parametrize(
    ("student", "reply", "rule"),
    [
        (BELIEF, "Yes, that's right. What's 5 minus 25?", "accept"),
        (WRONG_X, "Yes, that's correct. What's the value of x?", "accept"),
        (ROOT, "Right. What about the square of 9?", "accept"),
        (ROOT, "Correct!", "accept"),
        (ROOT, "Exactly.", "accept"),
        (ROOT, "Spot on, well reasoned.", "accept"),
        (ROOT, "That's it!", "accept"),
        (ROOT, "Well done!", "accept"),
        (WRONG_X, "You're right, x is 10.", "accept"),
        (WRONG_X, "Great, now that x = 10, what is 2x?", "praise"),
        (WRONG_X, "Now that x = 10, what is 3x - 2?", "builds-on"),
    ],
)  # fmt: skip
def test_acceptance_explicit_or_by_building_on_it(student, reply, rule) -> None:
    verdict = accepts_student_claim(student, reply)
    assert verdict.accepts is True and verdict.rule == rule and verdict.span


@pytest.mark.parametrize(
    ("student", "reply", "rule"),
    [
        (WRONG_X, "Not quite. What happens if you plug it back in?", "correction"),
        (WRONG_X, "What happens if you plug 10 back into the equation?", "doubt"),
        (WRONG_X, "Let's check: what is 2 times 10, plus 6?", "doubt"),
        (ROOT, "Are you sure? What is 8 x 8?", "doubt"),
        (ROOT, "Close, but look again: what is 8 times 8?", "correction"),
        (ROOT, "Hmm, look again at 8 x 8.", "correction"),
        (ROOT, "That's not right. 8 x 8 is 64.", "correction"),
        (ROOT, "It's 9, not 8.", "correction"),
        (ROOT, "The square root of 81 is 9.", "restates"),
        (BELIEF, "Compare them as hundredths: 0.50 and 0.25. Which is bigger?", "no-acceptance"),
        (BELIEF, "Decimals are read by place value: tenths, then hundredths.", "no-acceptance"),
        (ROOT, "Yes, well, not quite: 8 x 8 is 64.", "correction"),
    ],
)  # fmt: skip
def test_questioning_flagging_or_correcting_is_not_acceptance(student, reply, rule) -> None:
    verdict = accepts_student_claim(student, reply)
    assert verdict.accepts is False and verdict.rule == rule and verdict.span


@pytest.mark.parametrize(
    "student",
    ["How do I start?", "I don't know.", "Hi!", "hello there", "What is photosynthesis?",
     "Can you help me with fractions?", "I'm stuck.", "Thanks!", "I need help with question 3."],
)  # fmt: skip
@pytest.mark.parametrize(
    "reply", ["Not quite. Let's check.", "Are you sure?", "Correct!", "What do you know already?"]
)
def test_a_turn_without_a_claim_gives_none_never_false(student, reply) -> None:
    verdict = accepts_student_claim(student, reply)
    assert verdict.accepts is None and verdict.rule == "no-claim"


def test_every_rule_is_documented_and_fast() -> None:
    cases = [(ROOT, "Right."), (ROOT, "Not quite."), ("How?", "Hi"), (ROOT, "Let's check.")]
    start = time.perf_counter()
    for _ in range(50):
        rules = {accepts_student_claim(s, r).rule for s, r in cases}
    per_reply_ms = (time.perf_counter() - start) * 1000 / (50 * len(cases))
    assert rules <= set(RULES) and per_reply_ms < 20


@pytest.mark.parametrize(
    ("student", "reference", "correct"),
    [
        (WRONG_X, "x = 4", False),
        ("The square root of 81 is 9, right?", "9", True),
        (ROOT, "9", False),
        ("I got 3/4.", "0.75", True),
        ("It's 75%", "3/4", True),
        ("So the area is 50.3 cm^2", "50.27 cm^2", True),
        ("8 times 3, so 24? Did I get it?", "24", True),
        ("I think the powerhouse is the mitochondria.", "mitochondria", True),
        ("I think it's the nucleus.", "mitochondria", None),  # words: not comparable
        ("How do I start?", "9", None),
        (ROOT, None, None),
    ],
)  # fmt: skip
def test_the_claim_against_the_reference(student, reference, correct) -> None:
    assert student_claim_correct(student, reference) is correct


def test_the_stated_value_is_the_concluded_one() -> None:
    assert stated_value("the sum is 55 and there are 5 numbers, so the mean is 11. right?") == 11
    assert stated_value("How many?") is None


def test_score_response_gains_the_claim_keys() -> None:
    def score(student, reply, ref=None):
        msgs = [{"role": "user", "content": student}, {"role": "assistant", "content": reply}]
        return score_response(msgs, ref)

    m = score(ROOT, "Right. What about the square of 9?", "9")
    assert m["accepts_student_claim"] is True and m["verdict"] == {
        "rule": "accept",
        "span": "Right",
    }
    assert m["student_claim_correct"] is False and m["affirms_wrong"] is True
    assert m["confirms_right"] is None
    m = score("The square root of 81 is 9, yes?", "Are you sure?", "9")
    assert m["confirms_right"] is False and m["affirms_wrong"] is None
    m = score("How do I start?", "What do you know?", "9")
    assert m["accepts_student_claim"] is None and m["verdict"]["rule"] == "no-claim"
    assert m["affirms_wrong"] is None and m["confirms_right"] is None
    m = score(ROOT, "Right.")  # no reference: the verdict, but no judgement of the claim
    assert m["accepts_student_claim"] is True and m["student_claim_correct"] is None


def test_every_verdict_on_the_dev_set_explains_itself(repo_root) -> None:
    import json

    for path in sorted((repo_root / "data" / "claims").glob("*-dev.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            msgs = json.loads(line)["messages"]
            student = [m["content"] for m in msgs if m["role"] == "user"][-1]
            verdict = accepts_student_claim(student, msgs[-1]["content"])
            assert verdict.rule in RULES and verdict.span.strip(), line[:80]


@pytest.mark.parametrize(
    "turn", ["I have no idea how to do this one.", "I've got no clue where to begin."]
)
def test_saying_one_has_no_idea_is_no_claim(turn):
    verdict = accepts_student_claim(turn, "Let's look at it together. What do you know first?")
    assert verdict.accepts is None and verdict.rule == "no-claim"
