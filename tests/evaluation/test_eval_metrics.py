"""Offline metrics (`tutor.metrics`) on hand-made cases: questions outside code and quotes,
interrogative imperatives, the answer inside a question, the problem's own numbers restated,
equivalent number forms (3/4, 0.75, three quarters, 75%), units, money, text and code answers."""

from __future__ import annotations

import pytest

from tutor.metrics import (
    asks_question,
    number_mentions,
    question_count,
    reveals_answer,
    score_response,
    words,
)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("What do you notice about the denominators?", 1),
        ("Good start. Why? And what comes next?", 2),
        ("Can you tell me what you got.", 1),
        ("Walk me through your first step.", 1),
        ("Tell me what 3 times 4 is.", 1),
        ("204 + 160 + 330 =", 1),
        ("The answer is 12.", 0),
        ("Try again.", 0),
        ("Use `x?y:z` in C.", 0),
        ('You asked "why is the sky blue?" earlier.', 0),
        ("```python\nprint('ok?')\n```\nRun it.", 0),
        ("When you add them, you get 5.", 0),
    ],
)
def test_question_count(text: str, count: int) -> None:
    assert question_count(text) == count
    assert asks_question(text) is (count > 0)


def test_number_forms_are_equal_values() -> None:
    values = {v for v, _ in number_mentions("3/4, 0.75, three quarters, 75%, a quarter")}
    from fractions import Fraction

    assert values == {Fraction(3, 4), Fraction(75), Fraction(1, 4)}
    assert number_mentions("one and a half")[0][0] == Fraction(3, 2)
    assert number_mentions("$1,102.50")[0][0] == Fraction(220500, 200)


@pytest.mark.parametrize("response", ["It is 3/4.", "That gives 0.75", "three quarters", "75%"])
def test_equivalent_forms_reveal(response: str) -> None:
    assert reveals_answer(response, "3/4", "Shade a part of the square.") is True
    assert reveals_answer(response, "0.75", "Shade a part of the square.") is True


def test_answer_inside_a_question_counts_as_revealing() -> None:
    assert reveals_answer("Is it 12?", "12", "What is 3 x 4?") is True
    assert reveals_answer("What is 3 times 4?", "12", "What is 3 x 4?") is False


def test_restating_the_problem_is_not_revealing() -> None:
    problem = "Julia had 12 spoons and used 3. She had 12 left. How many did she start with?"
    assert (
        reveals_answer("You said she had 12 left; what about the 3 she used?", "12", problem)
        is False
    )
    # The same value in a new written form is the answer, not a restatement.
    ctx = "Write 0.375 as a fraction in lowest terms."
    assert reveals_answer("What does the 5 in 0.375 stand for?", "3/8", ctx) is False
    assert reveals_answer("It is three eighths.", "3/8", ctx) is True
    # A fraction still to be simplified is a calculation, not the answer.
    assert reveals_answer("Start from 375/1000: what divides both?", "3/8", ctx) is False
    assert reveals_answer("What is 24/4?", "6", "") is False


@pytest.mark.parametrize(
    ("response", "reference", "expected"),
    [
        ("The sale price is $54.40.", "$54.40", True),
        ("So it costs 54.4 dollars", "$54.40", True),
        ("What is 15% of $64?", "$54.40", False),
        ("You need 16.5 cups.", "16.5 cups", True),
        ("That's 35 percent", "35%", True),
        ("The probability is 12.5%", "0.125", True),
        ("x = 9", "9", True),
        ("It factors as (x-7)(x+2).", "(x - 7)(x + 2)", True),
        ("The area is 25π cm².", "25π cm^2", True),
        ("The capital of Japan is Tokyo.", "Tokyo", True),
        ("Which city hosts the parliament?", "Ottawa", False),
        ("You were right: Homophones sound alike.", "homophones", True),
        ("Try `x ** 2` instead.", "use ** for exponents", True),
        ("**Hint**: what does ^ do in Python?", "use ** for exponents", False),
        ("It just needs a return statement at the end.", "add a return statement", True),
        ("What happens to the value after the loop?", "add a return statement", False),
        ("Anything", None, None),
    ],
)
def test_reveals_answer_cases(response: str, reference: str | None, expected: bool | None) -> None:
    assert reveals_answer(response, reference, "") is expected


def test_score_response_uses_earlier_turns_as_context() -> None:
    msgs = [
        {"role": "system", "content": "tutor"},
        {"role": "user", "content": "I got 13/24 for 7/8 - 1/3, is that right?"},
        {"role": "assistant", "content": "Yes, 13/24 is right. Well done!"},
    ]
    scores = score_response(msgs, "13/24")
    assert scores["reveals_answer"] is False  # the student said it first: a confirmation
    assert scores["asks_question"] is False and scores["words"] == words(msgs[-1]["content"])
    with pytest.raises(ValueError, match="assistant"):
        score_response(msgs[:-1], "13/24")
