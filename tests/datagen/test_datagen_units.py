"""Pure pieces of the generator: reply extraction, template filling, the reproducible request plan,
Socratic gates (the bundled sample passes them all), exact and near-duplicate detection, critique
parsing, prices, Retry-After parsing and partial-line truncation. No network."""

from __future__ import annotations

import json
import os

import pytest

from datagen.client import _retry_after
from datagen.cost import cost_usd, price_for
from datagen.critique import PRINCIPLES, parse_critique
from datagen.extract import extract_conversations, remove_trailing_commas
from datagen.prompting import (
    DEFAULT_TEMPLATE,
    DEFAULT_TOPICS,
    fill_template,
    generator_messages,
    load_topics,
    plan_request,
    select_topics,
)
from datagen.quality import Deduper, Rejected, Rules, check_candidate
from datagen.store import truncate_partial_line
from testkit.fake_generator import conversation
from tutor.prompts import TUTOR_SYSTEM_PROMPT
from tutor.schema import Limits

CONV = {"conversations": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "?"}]}


@pytest.mark.parametrize(
    "text, items, unparsed",
    [
        (json.dumps([CONV, CONV]), 2, 0),
        ("Sure! Here they are:\n```json\n" + json.dumps([CONV]) + "\n```\nEnjoy.", 1, 0),
        ('[{"conversations": [{"role": "user", "content": "a,]"},],},]', 1, 0),  # trailing commas
        (json.dumps({"dialogues": [CONV, CONV, CONV]}), 3, 0),  # structured-output wrapper
        (json.dumps(CONV), 1, 0),  # a single conversation
        (json.dumps(CONV) + "\n" + json.dumps(CONV), 2, 0),  # objects one after another
        (json.dumps([CONV, CONV])[:-30], 1, 1),  # the last item cut off by max_tokens
        ('[{"conversations": [1 2]}, ' + json.dumps(CONV) + "]", 1, 1),  # a broken item
        ("I cannot help with that.", 0, 1),
        ("", 0, 1),
    ],
)
def test_extraction_counts_what_it_cannot_read(text: str, items: int, unparsed: int) -> None:
    ex = extract_conversations(text)
    assert (len(ex.items), ex.unparsed) == (items, unparsed), ex
    assert len(ex.errors) == unparsed
    assert all(isinstance(i, dict) and "conversations" in i for i in ex.items)


def test_trailing_commas_inside_strings_are_kept() -> None:
    assert remove_trailing_commas('{"a": "x,]", "b": [1, 2, ], }') == '{"a": "x,]", "b": [1, 2 ] }'
    assert remove_trailing_commas('["\\",]",]') == '["\\",]"]'


def test_template_fill_touches_only_the_placeholders() -> None:
    template = DEFAULT_TEMPLATE.read_text(encoding="utf-8")
    filled = fill_template(template, {"NUM_CONVERSATIONS": 4, "NUM_EXCHANGES": 3, "TOPIC": "x {y}"})
    assert "{NUM_CONVERSATIONS}" not in filled and "{TOPIC}" not in filled
    assert "Generate exactly 4 separate" in filled and "exactly 3 user/assistant" in filled
    assert '"conversations": [' in filled and "x {y}" in filled  # JSON braces untouched
    assert filled.replace("4", "").replace("3", "") != template  # something was filled


def test_request_plan_is_reproducible_and_diverse() -> None:
    topics = load_topics(DEFAULT_TOPICS)
    assert len(topics) >= 15 and all(t.subtopics for t in topics)
    plans = [plan_request(i, 7, 5, (2, 6), topics) for i in range(60)]
    again = [plan_request(i, 7, 5, (2, 6), topics) for i in range(60)]
    assert [vars(p) for p in plans] == [vars(p) for p in again]
    assert plan_request(3, 8, 5, (2, 6), topics).slots != plans[3].slots or plans[3].topic != (
        plan_request(3, 8, 5, (2, 6), topics).topic
    )
    assert len({p.subject for p in plans}) >= 10
    assert {p.exchanges for p in plans} == {2, 3, 4, 5, 6}
    assert len({s for p in plans for s, _ in p.slots}) == 7
    text = generator_messages(plans[0], DEFAULT_TEMPLATE.read_text())[0]["content"]
    assert plans[0].topic in text and "## THIS BATCH" in text
    assert select_topics(topics, "physics")[0].subject == "physics"
    assert select_topics(topics, "origami").__len__() == 1  # any topic, verbatim


def test_sample_dialogues_pass_every_gate(sample_file) -> None:
    for line in sample_file.read_text().splitlines():
        conv = check_candidate(json.loads(line), Limits(1, 8), Rules())
        assert conv.messages[0] == {"role": "system", "content": TUTOR_SYSTEM_PROMPT}


def _dialogue(*turns: str) -> dict:
    roles = ["user", "assistant"] * len(turns)
    return {
        "conversations": [{"role": r, "content": t} for r, t in zip(roles, turns, strict=False)]
    }


@pytest.mark.parametrize(
    "item, reason",
    [
        ("not an object", "schema: item is not an object"),
        (_dialogue("What is 15% of 80?"), "schema:"),  # ends with the user
        ({"conversations": [{"role": "bot", "content": "x"}]}, "schema:"),
        (_dialogue("What is 15% of 80?", "It's 12. Why?", "so 12", "Yes."), "final answer"),
        (_dialogue("Help with fractions", "Add the tops.", "ok 5/6", "Right."), "asks no question"),
        (_dialogue("Why?", "word " * 200 + "?", "ok", "Yes."), "longer than 150 words"),
        (_dialogue("Explain", "What do you think?", "x", "y", "z", "w"), "schema:"),  # 3 > max 2
    ],
)
def test_gates_reject_with_a_reason(item, reason: str) -> None:
    with pytest.raises(Rejected) as e:
        check_candidate(item, Limits(1, 2), Rules())
    assert reason in e.value.reason and e.value.detail


def test_system_prompt_is_replaced_and_the_final_turn_may_confirm() -> None:
    item = _dialogue("What is 15% of 80?", "What is 10% of 80?", "8, so 12", "Yes, 12 is right.")
    item["conversations"].insert(0, {"role": "system", "content": "You are Qwen."})
    conv = check_candidate(item, Limits(), Rules())
    assert conv.messages[0]["content"] == TUTOR_SYSTEM_PROMPT and len(conv.messages) == 5


def test_dedupe_exact_near_and_distinct() -> None:
    d = Deduper()
    a = conversation(1, 3)
    d.add(d.keys(a))
    assert d.check(d.keys([dict(m) for m in a])) == "exact"
    shouted = [{**m, "content": m["content"].upper() + "  "} for m in a]
    assert d.check(d.keys(shouted)) == "exact"  # normalised case and whitespace
    reopened = [dict(m) for m in a]
    reopened[1] = {"role": "assistant", "content": "A completely different first reply?"}
    reopened[3] = {"role": "assistant", "content": "And another different reply here?"}
    assert d.check(d.keys(reopened)) == "near: opening"
    edited = [dict(m) for m in a]
    edited[0] = {"role": "user", "content": "Totally new opening question from me?"}
    edited[-1] = {"role": "assistant", "content": edited[-1]["content"] + " Well done."}
    assert d.check(d.keys(edited)) == "near: dialogue"
    assert all(d.check(d.keys(conversation(i, 3))) is None for i in range(2, 200))


def test_critique_parsing() -> None:
    scores = dict.fromkeys(PRINCIPLES, 4)
    reply = {"scores": scores, "final_answer": "12", "problems": "", "verdict": "keep"}
    c = parse_critique("```json\n" + json.dumps(reply) + "\n```")
    assert not c.falls_short(3) and c.final_answer == "12" and c.revision == []
    assert parse_critique(
        json.dumps({**reply, "scores": {**scores, "guide_discovery": 2}})
    ).falls_short(3)
    assert not parse_critique(
        json.dumps({**reply, "scores": {**scores, "analogies_examples": 0}})
    ).falls_short(3)
    for broken in (
        "no json",
        json.dumps({**reply, "verdict": "maybe"}),
        json.dumps({"scores": {}}),
    ):
        with pytest.raises(ValueError):
            parse_critique(broken)


def test_prices_and_retry_after() -> None:
    assert price_for("gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert price_for("gpt-4o") == (2.50, 10.00)
    assert price_for("Qwen/Qwen2.5-72B-Instruct") is None
    assert price_for("anything", 1.0, 2.0) == (1.0, 2.0)
    assert price_for("gpt-4o-mini", batch=True) == (0.075, 0.30)  # Batch API: half the list
    assert price_for("anything", 1.0, 2.0, batch=True) == (1.0, 2.0)  # given = paid
    assert cost_usd(1_000_000, 500_000, (1.0, 2.0)) == pytest.approx(2.0)
    assert _retry_after({"retry-after": "3"}) == 3.0
    assert _retry_after({"retry-after-ms": "250"}) == 0.25
    assert 0 <= _retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) <= 0.0
    assert _retry_after({}) is None


@pytest.mark.parametrize(
    "content, kept",
    [
        (b"", b""),
        (b'{"a": 1}\n', b'{"a": 1}\n'),
        (b'{"a": 1}\n{"b"', b'{"a": 1}\n'),
        (b'{"b"', b""),
    ],
)
def test_truncate_partial_line(tmp_path, content: bytes, kept: bytes) -> None:
    p = tmp_path / "f.jsonl"
    p.write_bytes(content)
    fd = os.open(p, os.O_RDWR)
    try:
        assert truncate_partial_line(fd) == len(content) - len(kept)
    finally:
        os.close(fd)
    assert p.read_bytes() == kept


def test_cli_registration_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tutor.cli; tutor.cli.build_parser(); "
        "heavy = [m for m in ('openai', 'datasets', 'uvicorn') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
