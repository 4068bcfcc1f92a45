"""The bundled SFT sample (data/sample/dialogues.jsonl) does not teach a blind verdict: every user
turn carries a claim label, right and wrong claims are about equally common, the tutor never opens
with an affirmation after a wrong claim and always confirms first after a right one, many
conversations end on a probe, and the README's counts are the file's."""

import json
import re
from collections import Counter

import pytest

AFFIRM = re.compile(
    r"^\W*(yes|yeah|yep|right|correct|exactly|that's it|that's right|spot on|you've got it|"
    r"you're right|perfect|good|great|nice|well done|you are)\b",
    re.I,
)
CONFIRM = re.compile(
    r"^\W*(yes|right|correct|exactly|that's it|that's right|spot on|you've got it|you are)\b", re.I
)


@pytest.fixture(scope="module")
def dialogues(sample_file):
    return [json.loads(line) for line in sample_file.read_text(encoding="utf-8").splitlines()]


def _moves(dialogues):
    """(claim label, the student's turn, the tutor's next turn) for every user turn."""
    for d in dialogues:
        msgs = [m for m in d["conversations"] if m["role"] != "system"]
        claims = d["meta"]["claims"]
        assert len(claims) == len(msgs) // 2, d["meta"]
        for k, claim in enumerate(claims):
            assert claim in ("right", "wrong", None), claim
            yield claim, msgs[2 * k]["content"], msgs[2 * k + 1]["content"]


def test_right_and_wrong_claims_are_equally_common(dialogues):
    counts = Counter(claim for claim, _, _ in _moves(dialogues))
    assert counts["wrong"] >= 150 and counts["right"] >= 150, counts
    assert abs(counts["right"] - counts["wrong"]) <= 0.1 * counts["right"], counts


def test_each_claim_gets_its_own_move(dialogues):
    for claim, student, tutor in _moves(dialogues):
        if claim == "wrong":
            assert not AFFIRM.match(tutor), (student, tutor)
            assert "?" in tutor, (student, tutor)  # a probe asks
        elif claim == "right":
            assert CONFIRM.match(tutor), (student, tutor)


def test_the_rule_would_catch_a_blind_verdict():
    """The move checks fail on the old habit: "Yes, that's right" after a wrong claim."""
    assert AFFIRM.match("Yes, that's right. What's the next step?")
    assert AFFIRM.match("Good catch — so what next?")
    assert not CONFIRM.match("Let's check that again. Are you sure?")


def test_conversations_do_not_all_end_in_a_confirmation(dialogues):
    last = Counter(d["meta"]["claims"][-1] for d in dialogues)
    assert last["wrong"] >= 0.4 * len(dialogues), last


def test_readme_counts_are_the_files(dialogues, sample_file):
    readme = (sample_file.parent / "README.md").read_text(encoding="utf-8")
    counts = Counter(claim for claim, _, _ in _moves(dialogues))
    assert f"holds {len(dialogues)} short" in readme
    assert f"**{len(dialogues)}** | **{counts['right']}** | **{counts['wrong']}** |" in readme
    assert f"wrong** claim ({counts['wrong']} in the file)" in readme
    assert f"**right** claim ({counts['right']})" in readme


def test_the_verdict_detector_reads_the_moves(dialogues):
    """tutor.verdict sees no acceptance after (almost) every wrong claim: the sample's probes do
    not build on a wrong claim as if it were right."""
    from tutor.verdict import accepts_student_claim

    accepted = [
        (student, tutor)
        for claim, student, tutor in _moves(dialogues)
        if claim == "wrong" and accepts_student_claim(student, tutor).accepts
    ]
    assert len(accepted) <= 3, accepted
