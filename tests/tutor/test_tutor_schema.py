"""The conversation schema: valid shapes, every rule, and the one-line error for each kind of bad record."""

import pytest

from tutor.prompts import TUTOR_SYSTEM_PROMPT
from tutor.schema import (
    Limits,
    SchemaError,
    fingerprint,
    parse_conversation,
    parse_messages,
    with_system_prompt,
)

U = {"role": "user", "content": "What is a prime number?"}
A = {"role": "assistant", "content": "What do you notice about the divisors of 7?"}
S = {"role": "system", "content": TUTOR_SYSTEM_PROMPT}


def test_valid_with_and_without_system_and_messages_key():
    conv = parse_conversation({"conversations": [S, U, A, U, A], "meta": {"subject": "maths"}})
    assert conv.exchanges == 2 and conv.system == TUTOR_SYSTEM_PROMPT
    assert conv.to_record() == {"conversations": [S, U, A, U, A], "meta": {"subject": "maths"}}
    assert parse_conversation({"messages": [U, A]}).system is None


def test_extra_message_fields_are_dropped_but_roles_kept():
    conv = parse_conversation({"messages": [{**U, "name": "x"}, A]})
    assert conv.messages[0] == U


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ([U, A], "record: expected a JSON object, got array"),
        ({"turns": [U, A]}, "record: missing key 'conversations' (or 'messages')"),
        (
            {"conversations": [U, A], "messages": [U, A]},
            "record: has both 'conversations' and 'messages'",
        ),
        ({"conversations": "hi"}, "conversations: expected a list of messages, got string"),
        ({"conversations": []}, "conversations: empty list of messages"),
        (
            {"conversations": [U, "hello"]},
            "conversations[1]: expected an object with 'role' and 'content', got string",
        ),
        ({"conversations": [{"content": "x"}, A]}, "conversations[0]: missing key 'role'"),
        ({"conversations": [U, {"role": "assistant"}]}, "conversations[1]: missing key 'content'"),
        (
            {"conversations": [{"role": "bot", "content": "x"}, A]},
            "conversations[0].role: unknown role 'bot' (allowed: system, user, assistant)",
        ),
        (
            {"conversations": [{"role": 1, "content": "x"}, A]},
            "conversations[0].role: expected a string, got number",
        ),
        (
            {"conversations": [U, {"role": "assistant", "content": 42}]},
            "conversations[1].content: expected a string, got number",
        ),
        (
            {"conversations": [U, {"role": "assistant", "content": None}]},
            "conversations[1].content: expected a string, got null",
        ),
        (
            {"conversations": [U, {"role": "assistant", "content": " \n\t"}]},
            "conversations[1].content: empty after stripping whitespace",
        ),
        (
            {"conversations": [U, S, A]},
            "conversations[1].role: a system message may only come first",
        ),
        (
            {"conversations": [S, S, U, A]},
            "conversations[1].role: a system message may only come first",
        ),
        ({"conversations": [A, U, A]}, "conversations[0].role: expected 'user'"),
        ({"conversations": [U, U, A]}, "conversations[1].role: expected 'assistant'"),
        (
            {"conversations": [S, U, A, U]},
            "conversations: must end with an assistant message, ends with 'user'",
        ),
        ({"conversations": [S]}, "conversations: only a system message, no user turn"),
        ({"conversations": [U, A], "meta": "x"}, "meta: expected an object, got string"),
    ],
)
def test_bad_records_give_one_line_errors(record, error):
    with pytest.raises(SchemaError) as e:
        parse_conversation(record)
    assert str(e.value).startswith(error)
    assert "\n" not in str(e.value)


def test_limits_on_exchanges_and_characters():
    forty = [U, A] * 40
    assert parse_conversation({"conversations": forty}).exchanges == 40  # no upper bound
    with pytest.raises(SchemaError, match=r"conversations: 40 exchanges, outside 1\.\.8"):
        parse_conversation({"conversations": forty}, Limits(max_exchanges=8))
    assert parse_conversation({"conversations": forty[:18]}, Limits(max_exchanges=9)).exchanges == 9
    with pytest.raises(SchemaError, match=r"conversations: 2 exchanges, outside 3\.\.$"):
        parse_conversation({"conversations": [U, A, U, A]}, Limits(min_exchanges=3))
    with pytest.raises(SchemaError, match=r"conversations: 2 exchanges, outside 3\.\.8"):
        parse_conversation({"conversations": [U, A, U, A]}, Limits(3, 8))
    long = {"role": "assistant", "content": "x" * 101}
    with pytest.raises(SchemaError, match=r"conversations\[1\]\.content: 101 characters > max 100"):
        parse_conversation({"conversations": [U, long]}, Limits(max_chars=100))
    with pytest.raises(ValueError, match="1 <= min <= max"):
        Limits(min_exchanges=5, max_exchanges=2)


def test_prompt_shaped_messages_may_end_with_user():
    assert parse_messages([S, U], "messages", final_role="user")[-1] == U
    with pytest.raises(SchemaError, match="must end with an user message"):
        parse_messages([U, A], "messages", final_role="user")


def test_system_prompt_insertion_and_fingerprint():
    assert with_system_prompt([U, A], "sys")[0] == {"role": "system", "content": "sys"}
    assert with_system_prompt([S, U, A], "sys")[0] == S
    shouted = [{"role": "user", "content": "  WHAT is a prime   number? "}, A]
    assert fingerprint(shouted) == fingerprint([S, U, A])
    assert fingerprint([U, A]) != fingerprint([U, {**A, "content": "Why?"}])
