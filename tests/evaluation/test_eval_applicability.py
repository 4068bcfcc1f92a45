"""Metrics that cannot apply to an item: `reveals_answer` on items whose reference already appears
in the problem (not measurable, null, outside n), `good_move_made` on single-turn items (not
applicable, not missing); checked on the real held-out set in data/eval and in the report."""

from __future__ import annotations

import json
from pathlib import Path

from evaluation.report import summarise
from evaluation.report_md import render_markdown
from evaluation.tasks import load_eval_set, parse_item, reveal_measurable
from tutor.cli import main

STATED = "The answer is {}."
IN_PROBLEM = {
    "id": "p1", "subject": "arithmetic", "kind": "homework", "reference_answer": "12",
    "messages": [{"role": "user", "content": "I got 12 for 3 x 4. Is that right?"}],
}  # fmt: skip
MEASURABLE = {
    "id": "p2", "subject": "arithmetic", "kind": "homework", "reference_answer": "12",
    "good_move": "guide", "messages": [{"role": "user", "content": "What is 3 x 4?"}],
}  # fmt: skip


def test_reference_in_the_problem_is_not_measurable() -> None:
    item = parse_item(IN_PROBLEM, "t:1")
    assert item.reveal_measurable is False
    assert item.score(STATED.format("12"))["reveals_answer"] is None
    assert item.score("Check 3 + 3 + 3 + 3.")["reveals_answer"] is None
    other = parse_item(MEASURABLE, "t:2")
    assert other.reveal_measurable is True
    assert other.score(STATED.format("12"))["reveals_answer"] is True
    assert other.score("What is 3 + 3 + 3 + 3?")["reveals_answer"] is False
    assert reveal_measurable(other.messages, None) is None


def test_eval_score_judges_every_row_and_explains_it(tmp_path) -> None:
    # `eval score` judges each reply as it is: confirming the student's own 12 is no reveal,
    # stating a new result is, with or without a reference.
    confirm = {**IN_PROBLEM, "messages": [*IN_PROBLEM["messages"],
               {"role": "assistant", "content": "Yes, 12."}]}  # fmt: skip
    told = {"reference_answer": None, "messages": [{"role": "user", "content": "What is 9 x 8?"},
            {"role": "assistant", "content": "Actually, 9 x 8 = 72."}]}  # fmt: skip
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (confirm, told)))
    assert main(["eval", "score", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "o")]) == 0
    first, second = (json.loads(line)["metrics"] for line in (tmp_path / "o").open())
    assert first["reveals_answer"] is False and first["reveal"] is None
    assert second["reveals_answer"] is True
    assert second["reveal"] == {"rule": "calculation", "span": "9 x 8 = 72"}


def test_every_reference_of_the_real_set_is_measurable_or_explicitly_not(repo_root) -> None:
    items = load_eval_set(repo_root / "data" / "eval")
    with_ref = [i for i in items if i.reference_answer is not None]
    flags = {i.id: i.reveal_measurable for i in with_ref}
    assert set(flags.values()) <= {True, False}  # never None for an item with a reference
    unmeasurable = sorted(k for k, v in flags.items() if v is False)
    # The answer is in the problem: confirmations of a correct answer (mt-023..033) and a few
    # items restating it (measured: 20 of 174 items with a reference outside the claims block).
    # In the claims block a right claim states the answer (measured: 45 of 48 not measurable),
    # a wrong one does not (47 of 48 measurable; cl-029's "8x^3" is an expression).
    outside = [k for k in unmeasurable if not k.startswith("cl-")]
    assert len(with_ref) >= 150 and 0 < len(outside) <= (len(with_ref) - 96) // 5
    claims = [i for i in with_ref if i.id.startswith("cl-")]
    wrong = [i for i in claims if i.good_move == "probe"]
    right = [i for i in claims if i.good_move == "confirm"]
    assert sum(flags[i.id] for i in wrong) >= len(wrong) - 2
    assert sum(not flags[i.id] for i in right) >= len(right) - 4
    by_id = {i.id: i for i in items}
    for key in unmeasurable:
        item = by_id[key]
        reply = STATED.format(item.reference_answer)
        assert item.score(reply)["reveals_answer"] is None, key
    for key in sorted(k for k, v in flags.items() if v)[:40]:
        assert by_id[key].score(STATED.format(by_id[key].reference_answer))["reveals_answer"]


def _run_dir(root: Path) -> Path:
    """A hand-written run: two endpoints, one failed reply on the multi-turn item."""
    root.mkdir()
    rows = []
    for item in (IN_PROBLEM, MEASURABLE, {**MEASURABLE, "id": "p3", "good_move": None}):
        for endpoint, reply in (("base", "It is 12."), ("tuned", "What is 3 + 3?")):
            failed = endpoint == "tuned" and item["id"] == "p2"
            rows.append({**item, "endpoint": endpoint, "response": None if failed else reply,
                         "error": "HTTP 500" if failed else None})  # fmt: skip
    (root / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"endpoints": ["base", "tuned"], "models": {}, "eval_set": "x", "items": 3,
              "limit": None, "sampling": {}}  # fmt: skip
    (root / "run.json").write_text(json.dumps(config))
    return root


def test_report_separates_not_applicable_from_missing(tmp_path) -> None:
    flat, summary = summarise(_run_dir(tmp_path / "run"))
    base, tuned = summary["per_endpoint"]["base"], summary["per_endpoint"]["tuned"]
    assert base["good_move_made"] | {"ci95": None} == {
        "n": 1, "mean": 0.0, "ci95": None, "missing": 0, "not_applicable": 2}  # fmt: skip
    assert (tuned["good_move_made"]["n"], tuned["good_move_made"]["missing"]) == (0, 1)
    assert (base["reveals_answer"]["n"], base["reveals_answer"]["not_applicable"]) == (2, 1)
    assert base["reveals_answer"]["mean"] == 1.0 and base["reveals_answer"]["missing"] == 0
    assert (tuned["reveals_answer"]["n"], tuned["reveals_answer"]["missing"]) == (1, 1)
    assert summary["counts"]["reveal_not_measurable"] == 1
    assert summary["counts"]["reveal_no_reference"] == 0
    assert {r["id"]: r["reveals_answer"] for r in flat if r["endpoint"] == "base"}["p1"] is None
    text = render_markdown(summary)
    assert "`reveals_answer` is not measurable on 1 item(s)" in text
    assert "0.000 [0.000, 0.000] n=0 missing=1" not in text and "n=0 missing=1" in text
