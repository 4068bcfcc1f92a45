"""Importers: ShareGPT, OpenAI, Alpaca, pairs and MathDial records into the conversation format,
format auto-detection, and the errors for records no importer fits."""

import json

import pytest

from tutor.importers import detect_format, import_record
from tutor.schema import Limits, SchemaError, parse_conversation

SHAREGPT = {
    "id": "sg-1",
    "conversations": [
        {"from": "human", "value": "Why does ice float?"},
        {"from": "gpt", "value": "What do you know about the density of ice compared with water?"},
        {"from": "human", "value": "Ice is less dense?"},
        {
            "from": "gpt",
            "value": "Yes. So what happens to something less dense than the liquid around it?",
        },
    ],
}
ALPACA = {
    "instruction": "Explain recursion.",
    "input": "def f(n): return f(n-1)",
    "output": "What stops it?",
}
PAIRS = {
    "system": "Be brief.",
    "user": "2+2?",
    "assistant": "What do you get when you count on from 2?",
}
OPENAI = {
    "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "What shall we study?"},
    ],
    "source": "x",
}


@pytest.mark.parametrize(
    ("record", "fmt"),
    [(SHAREGPT, "sharegpt"), (ALPACA, "alpaca"), (PAIRS, "pairs"), (OPENAI, "openai")],
)
def test_detect_and_import_to_a_valid_conversation(record, fmt):
    assert detect_format(record) == fmt
    conv = parse_conversation(import_record(record))
    assert conv.messages[-1]["role"] == "assistant"


def test_sharegpt_roles_and_system_field():
    out = import_record({**SHAREGPT, "system": "Be Socratic."})
    assert [m["role"] for m in out["conversations"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    with pytest.raises(SchemaError, match=r"conversations\[0\]\.from: unknown speaker 'narrator'"):
        import_record({"conversations": [{"from": "narrator", "value": "x"}]}, "sharegpt")


def test_alpaca_joins_instruction_and_input():
    msgs = import_record(ALPACA)["conversations"]
    assert msgs[0] == {"role": "user", "content": "Explain recursion.\n\ndef f(n): return f(n-1)"}
    with pytest.raises(SchemaError, match="output: expected a string"):
        import_record({"instruction": "x", "output": 3})


def test_pairs_and_openai_keep_extra_fields_in_meta():
    assert [m["role"] for m in import_record(PAIRS)["conversations"]] == [
        "system",
        "user",
        "assistant",
    ]
    assert import_record(OPENAI)["meta"] == {"extra": {"source": "x"}}


def test_unknown_format_names_the_fields():
    with pytest.raises(SchemaError, match="unknown format .* got prompt, text"):
        import_record({"prompt": "x", "text": "y"})
    with pytest.raises(SchemaError, match="format: unknown 'csv'"):
        import_record(OPENAI, "csv")


def test_mathdial_record_shape():
    rec = {
        "qid": 7,
        "question": "Tom has 3 apples and buys 4 more. How many?",
        "student_incorrect_solution": "3 + 4 = 8\n 8",
        "ground_truth": "3+4=7\n 7",
        "conversation": "Teacher: (generic)Hi, walk me through it|EOM|Kim: I added them|EOM|"
        "Teacher: (probing)What is 3 + 4?|EOM|Teacher: (focus)Count on from 3.|EOM|Kim: 7!",
    }
    out = import_record(rec)
    roles = [m["role"] for m in out["conversations"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert out["conversations"][0]["content"].endswith("Here is my solution:\n3 + 4 = 8\n 8")
    assert out["conversations"][3]["content"] == "What is 3 + 4?\nCount on from 3."
    assert out["meta"] == {
        "source": "mathdial",
        "qid": 7,
        "moves": ["generic", "probing+focus"],
        "reference_answer": "7",
        "trailing_user": "7!",
    }


def test_all_599_mathdial_dialogues_convert(mathdial_file):
    rows = [json.loads(line) for line in mathdial_file.read_text().splitlines()]
    assert len(rows) == 599
    moves = 0
    for row in rows:
        out = import_record(row)
        conv = parse_conversation(out, limits=Limits(max_exchanges=32))
        assert len(out["meta"]["moves"]) == conv.exchanges
        assert "(" not in conv.messages[2]["content"][:1]  # move labels are stripped from the text
        moves += conv.exchanges
    assert moves > 3000
