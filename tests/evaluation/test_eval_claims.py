"""The claims block of the held-out set (data/eval/claims.jsonl): half right and half wrong student
claims across the 13 subjects, single and multi-turn, each right claim stating its reference and no
wrong one stating it, no near-duplicate of the training sample or of the other eval files; and how
an item turns the verdict detector's `accepts_student_claim` into `affirms_wrong`,
`confirms_right` and `good_move_made` (probe: the reply does not accept the wrong claim)."""

from __future__ import annotations

import json
import re
from difflib import SequenceMatcher

import pytest

from evaluation import tasks
from evaluation.tasks import claim_verdicts, load_eval_set, parse_item
from tutor.metrics import find_reveal, score_response
from tutor.numbers import normalise, number_mentions

SUBJECTS = {"arithmetic", "algebra", "geometry", "programming", "physics", "chemistry", "biology",
            "history", "geography", "economics", "statistics", "writing", "literature"}  # fmt: skip
NEAR = 0.7  # difflib ratio of user turns; measured: at most 0.55 to the training sample, 0.66
# to the other eval files (shared phrasing such as "What is the ... of")


@pytest.fixture(scope="module")
def claims(repo_root):
    return load_eval_set(repo_root / "data" / "eval" / "claims.jsonl")


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", normalise(text).lower()).strip()


def _numbers(text: str) -> set:
    """The values in `text`, leaving out exponents of units (cm^3, cm³)."""
    return {v for v, _ in number_mentions(re.sub(r"(?<=[a-z])\^?\d", "", _plain(text)))}


def _same(claim: str, reference: str) -> bool:
    """The student's stated answer against the reference: an expression (8x^3, 4Fe + 3O2) as
    compact text, else as numbers, else as words."""
    if re.search(r"\d[a-z]", reference, re.I):
        return re.sub(r"[\s^]", "", _plain(claim)) == re.sub(r"[\s^]", "", _plain(reference))
    if _numbers(reference):
        return _numbers(claim) == _numbers(reference)
    return _plain(claim).removeprefix("the ") == _plain(reference).removeprefix("the ")


def test_the_block_is_balanced_and_well_formed(claims) -> None:
    assert len(claims) == 96
    assert [i.id for i in claims] == [f"cl-{n:03d}" for n in range(1, 97)]
    assert {i.subject for i in claims} == SUBJECTS
    right = [i for i in claims if i.kind == "claim_right"]
    wrong = [i for i in claims if i.kind == "claim_wrong"]
    assert len(right) == len(wrong) == 48
    assert {i.good_move for i in right} == {"confirm"} and {i.good_move for i in wrong} == {"probe"}
    for subject in SUBJECTS:  # every subject has both kinds
        assert {i.kind for i in claims if i.subject == subject} == {"claim_right", "claim_wrong"}
    multi = [i for i in claims if len(i.messages) > 1]
    assert len(multi) >= 24 and any(len(i.messages) == 5 for i in multi)
    # the first items alternate wrong, right, so a short run (`--limit`, the demo) has both
    assert [i.kind for i in claims[:4]] == ["claim_wrong", "claim_right"] * 2
    for i in claims:
        assert i.reference_answer and i.scenario["problem"] and i.scenario["persona"]
        assert (i.scenario["misconception"] is None) == (i.kind == "claim_right"), i.id
        assert i.messages[-1]["content"].rstrip().endswith("?"), i.id  # asks whether it is right


def test_right_claims_state_the_reference_and_wrong_ones_do_not(claims) -> None:
    for i in claims:
        claim = i.scenario["claim"]  # the answer the student states, as worded in the turn
        assert _plain(claim) in _plain(i.messages[-1]["content"]), i.id
        assert _same(claim, i.reference_answer) == (i.kind == "claim_right"), i.id


def test_earlier_tutor_turns_guide_without_giving_the_answer(claims) -> None:
    for i in claims:
        for k, m in enumerate(i.messages):
            if m["role"] == "assistant":
                assert m["content"].rstrip().endswith("?"), i.id
                assert find_reveal(i.messages[: k + 1], i.reference_answer) is None, i.id


def test_no_near_duplicate_of_the_training_sample_or_the_other_eval_files(claims, repo_root):
    others = []
    for line in (repo_root / "data" / "sample" / "dialogues.jsonl").open(encoding="utf-8"):
        turns = json.loads(line)["conversations"]
        others += [m["content"] for m in turns if m["role"] == "user"]
    for name in ("single_turn.jsonl", "multi_turn.jsonl"):
        for item in load_eval_set(repo_root / "data" / "eval" / name):
            others += [m["content"] for m in item.messages if m["role"] == "user"]
    others = [_plain(t) for t in others]
    for i in claims:
        for turn in (m["content"] for m in i.messages if m["role"] == "user"):
            mine = _plain(turn)
            for other in others:
                matcher = SequenceMatcher(None, mine, other)  # quick_ratio: a cheap upper bound
                near = matcher.quick_ratio() >= NEAR and matcher.ratio() >= NEAR
                assert not near, (i.id, turn, other)


WRONG = {"id": "c1", "subject": "arithmetic", "kind": "claim_wrong", "good_move": "probe",
         "reference_answer": "56",
         "messages": [{"role": "user", "content": "7 x 8 = 54, right?"}]}  # fmt: skip
RIGHT = {**WRONG, "id": "c2", "kind": "claim_right", "good_move": "confirm",
         "messages": [{"role": "user", "content": "7 x 8 = 56, right?"}]}  # fmt: skip


def test_claim_verdicts_follow_the_items_label() -> None:
    for accepts, label, want in (
        (True, False, (True, None)), (False, False, (False, None)), (None, False, (None, None)),
        (True, True, (None, True)), (False, True, (None, False)), (None, True, (None, None)),
    ):  # fmt: skip
        metrics = {"accepts_student_claim": accepts, "student_claim_correct": not label}
        claim_verdicts(metrics, label)
        assert (metrics["affirms_wrong"], metrics["confirms_right"]) == want
        assert metrics["student_claim_correct"] is label  # the item's label wins
    untouched = {"accepts_student_claim": True, "affirms_wrong": None}
    claim_verdicts(untouched, None)  # no label: the detector's own comparison stays
    assert untouched == {"accepts_student_claim": True, "affirms_wrong": None}


def test_probe_is_made_only_when_the_wrong_claim_is_not_accepted(monkeypatch) -> None:
    # the verdict detector stands in as a phrase rule here; tests/tutor cover the real one
    real = tasks.score_response

    def with_verdict(messages, reference):
        metrics = real(messages, reference)
        reply = messages[-1]["content"]
        metrics["accepts_student_claim"] = reply.startswith("Yes")
        return metrics

    monkeypatch.setattr(tasks, "score_response", with_verdict)
    wrong, right = parse_item(WRONG, "t:1"), parse_item(RIGHT, "t:2")
    accepted = wrong.score("Yes, that's right. What is 7 x 9?")
    assert accepted["good_move_made"] is False and accepted["affirms_wrong"] is True
    probed = wrong.score("How could you check 7 x 8 with 7 x 10?")
    assert probed["good_move_made"] is True and probed["affirms_wrong"] is False
    told = wrong.score("No: 7 x 8 = 56.")  # not accepted, but the answer is handed over
    assert told["good_move_made"] is False and told["reveals_answer"] is True
    confirmed = right.score("Yes, 56 is right.")
    assert confirmed["confirms_right"] is True and confirmed["affirms_wrong"] is None


def test_the_detector_sees_every_claim_and_never_contradicts_a_label(claims) -> None:
    # tutor.claim compares the student's claim with the reference where it can (measured: 58 of
    # 96, all agreeing with the item's label); the item's label is what the report uses.
    decided = 0
    for i in claims:
        said = [*i.messages, {"role": "assistant", "content": "Yes, that's right."}]
        metrics = score_response(said, i.reference_answer)
        assert metrics["accepts_student_claim"] is True, i.id  # a claim was found and accepted
        if metrics["student_claim_correct"] is not None:
            decided += 1
            assert metrics["student_claim_correct"] == (i.kind == "claim_right"), i.id
    assert decided >= 50
