"""The answer-leak detector (`tutor.metrics.find_reveal`) on hand-made turns: results revealed
without a reference (calculations, result phrases, answer declarations, values offered in a
question), the reference as one more signal, the hard negatives (asking, restating the givens,
confirming the student's own result, the tutor's own example, units, labels), conclusions that
reveal a value the student wrote but did not conclude, LaTeX and markdown, and the explanation
(rule and span). Also the number spans of `tutor.numbers`."""

from __future__ import annotations

from fractions import Fraction

import pytest

from tutor.metrics import Reveal, find_reveal, score_response
from tutor.numbers import find_numbers, number_mentions
from tutor.statements import RULES

MULT = "What is 9 x 8? I think it's 63."
SPOONS = (
    "Julia bought a package of spoons. Her husband gave her 5 more. She used 3 to taste the stew "
    "and then had 12 spoons. How many spoons were in Julia's package?\n\nHere is my solution:\n"
    "12 - 3 = 9\n9 - 5 = 4\nJulia bought 4 spoons."
)
RECORDS = (
    "People trade 2 old records for 1 new one. 5 people leave with 7 new records. How many old "
    "records did they bring?\n\nMy solution: 7 x 2 = 14, 14 / 5 = 2.8, so 2 each, 2 x 5 = 10."
)


def reveal(student: str | list[str], reply: str, reference: str | None = None) -> Reveal | None:
    turns = [student] if isinstance(student, str) else student
    msgs = []
    for i, text in enumerate(turns):
        if i:
            msgs.append({"role": "assistant", "content": "Go on."})
        msgs.append({"role": "user", "content": text})
    return find_reveal([*msgs, {"role": "assistant", "content": reply}], reference)


@pytest.mark.parametrize(
    ("student", "reply", "rule", "span"),
    [
        (MULT, "Actually, when we multiply 9 and 8, we get 72.", "result", "we get 72"),
        (MULT, "Close! 9 x 8 = 72. Remember 9 x 7 is 63.", "calculation", "9 x 8 = 72"),
        (MULT, "Good try, but the answer is 72.", "answer", "answer is 72"),
        (MULT, "Is it 72 maybe? Count again.", "offered", "Is it 72 maybe?"),
        (MULT, r"Let's check: \(9 \times 8 = 72\).", "calculation", "9 * 8 = 72"),
        (MULT, "**Answer: 72**", "answer", "Answer: 72"),
        ("what is 56 divided by 7", "It's 8, because 7 x 8 = 56.", "answer", "It's 8,"),
        (
            "7 trays of 60 muffins. I added: 67",
            "When we multiply 7 by 60, we get 420.",
            "result",
            "we get 420",
        ),
        (
            "Round 3,476 to the nearest hundred.",
            "It rounds up, so 3,476 becomes 3,500.",
            "result",
            "becomes 3,500",
        ),
        (
            "Simplify 12/20. I got 6/10.",
            "Divide both by 4 and you get 3/5.",
            "result",
            "you get 3/5",
        ),
        ("25% of 80? Is it 25?", "25% of 80 = 20.", "calculation", "25% of 80 = 20"),
        (
            "Solve 3x + 5 = 20. I got x = 8.",
            "Subtract 5 from both sides, so x = 5.",
            "answer",
            "x = 5",
        ),
        (SPOONS, "She had 12 + 3 = 15 spoons before tasting.", "calculation", "12 + 3 = 15"),
        (SPOONS, "Before tasting, there were 15 spoons.", "result", "there were 15"),
    ],
)
def test_reveals_without_a_reference(student, reply, rule, span) -> None:
    found = reveal(student, reply)
    assert found == Reveal(rule, span)
    assert found.rule in RULES


@pytest.mark.parametrize(
    ("student", "reply"),
    [
        (MULT, "Not quite. What is 9 x 7? And what would one more 9 make?"),
        (MULT, "Hmm, 63 is 9 x 7. How many nines do you need?"),
        (MULT, "Let's count up by 9s together: 9, 18, 27... can you keep going?"),
        ("25 x 12?", "25 x 12 = ?"),
        ("1800 + 720", "1800 + 720 = 25_0"),
        (SPOONS, "She used 3 spoons and still had 12 left. Did she have more or fewer before?"),
        (SPOONS, "You subtracted 3 from 12 to get 9. Why subtract the spoons she used?"),
        (SPOONS, "You need to add the 3 spoons back instead of taking them away."),
        (
            ["I did 12 + 3 = 15 and 15 - 5 = 10. She bought 10."],
            "Exactly, 15 - 5 = 10 spoons. Great work.",
        ),
        (["5, so 15 - 5 = 10. She bought 10."], "Well done. So 10 is our required answer."),
        ("how many minutes in 3.5 hours", "Remember 1 hour = 60 minutes. How could you use that?"),
        ("how many minutes past 60", "There are 60 minutes in an hour. What happens after 60?"),
        ("Plates for 6 people, 3 meals.", "If you had 2 bags of 5 apples, 2 x 5 = 10 apples."),
        ("Jay saves 20 dollars, then 30.", "So now work out week 3 and the total."),
        ("What is 3/4 + 1/8?", "What is 3/4 written in eighths?"),
    ],
)
def test_hard_negatives_do_not_reveal(student, reply) -> None:
    assert reveal(student, reply) is None


def test_a_conclusion_reveals_a_value_the_student_wrote_but_did_not_conclude() -> None:
    # 14 is in the student's working, but they concluded 10: declaring 14 the answer tells it.
    reply = "You only need the total, so 14 is our required answer."
    assert reveal(RECORDS, reply) == Reveal("answer", "14 is our required answer")
    assert reveal(RECORDS, "No, 7 x 2 = 14.") == Reveal("calculation", "7 x 2 = 14")
    # ... but restating the same number without concluding is not a reveal,
    assert reveal(RECORDS, "Look at your first line: which number is the total?") is None
    # and confirming what the student concluded in their last turn never is.
    assert reveal([RECORDS, "so it's 14?"], "Yes! 14 is our required answer.") is None


def test_the_reference_is_one_more_signal() -> None:
    problem = "Tickets cost $5. Tom buys 2 tickets, a $5 drink and a $20 T-shirt. I said $30."
    assert reveal(problem, "It should be $35 in total.", "$35").rule == "reference"
    assert reveal(problem, "It should be $35 in total.") is not None  # found without it too
    # The reference used as an input or a list item is not stated as a result.
    hot_dogs = "36 guests, half get two. 40 came. I got 22."
    assert reveal(hot_dogs, "What would you have to times 26 by to find the total?", "26") is None
    assert reveal("count to 32 in 4s", "Count in 4s: 4, 8, 12... how many until 32?", "8") is None
    # The answer inside a yes/no question counts: the student only has to agree.
    assert reveal("What is 3 x 4?", "Is it 12?", "12").rule == "reference"


def test_score_response_explains_the_reveal() -> None:
    msgs = [{"role": "user", "content": MULT}, {"role": "assistant", "content": "9 x 8 = 72."}]
    scores = score_response(msgs)
    assert scores["reveals_answer"] is True
    assert scores["reveal"] == {"rule": "calculation", "span": "9 x 8 = 72"}
    guided = [*msgs[:1], {"role": "assistant", "content": "What is 9 x 7?"}]
    assert score_response(guided)["reveal"] is None
    with pytest.raises(ValueError, match="assistant"):
        find_reveal(msgs[:1])


def test_numbers_have_values_and_spans() -> None:
    text = "we get 72, then $1,102.50 and three quarters"
    found = find_numbers(text)
    assert [text[slice(*n.span)] for n in found] == ["72", "$1,102.50", "three quarters"]
    assert [n.value for n in found] == [72, Fraction(220500, 200), Fraction(3, 4)]
    assert number_mentions("24/4") == [(Fraction(6), "ratio")]


def test_a_text_or_code_reference_is_matched_as_written() -> None:
    crash = "My script crashes: TypeError: unsupported operand type(s) for ^. Why?"
    found = reveal(crash, "Try `x ** 2` instead.", "use ** for exponents")
    assert found == Reveal("reference", "Try `x ** 2` instead.")
    assert reveal(crash, "**Hint**: what does ^ do in Python?", "use ** for exponents") is None
