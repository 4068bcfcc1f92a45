"""`socratic eval claim-agreement`: the verdict detector against the project's human-labelled set
in data/claims (P/R/F1 of "accepts a wrong claim" beside the opener baseline, per file and in
all), one-line errors naming the file:line and field of a bad row, and `good_move_made` no longer
counting an accepted wrong claim as guiding."""

from __future__ import annotations

import json

import pytest

from evaluation.claim_agreement import opener_rule, read_claim_rows
from evaluation.tasks import parse_item
from tutor.cli import main
from tutor.io import DataError


def test_the_frozen_detector_on_the_test_split(repo_root, tmp_path, capsys) -> None:
    """The figures measured once on the test files, written after the detector was frozen
    (docs/evaluation.md); a change to tutor/verdict.py that moves them must be re-measured on new
    data, not tuned to these files."""
    out = tmp_path / "test.json"
    files = [str(repo_root / "data" / "claims" / f"{name}-test.jsonl")
             for name in ("written", "mathdial")]  # fmt: skip
    assert main(["eval", "claim-agreement", *files, "--by-file", "--json", str(out)]) == 0
    assert "opener baseline" in capsys.readouterr().out
    numbers = json.loads(out.read_text())
    written = numbers["by_file"][files[0]]["accepts_wrong"]
    assert (written["detector"]["tp"], written["detector"]["fp"], written["detector"]["fn"]) == (
        30, 0, 2)  # fmt: skip
    assert written["detector"]["f1"] == 0.968 and written["opener baseline"]["f1"] == 0.897
    detector = numbers["accepts_wrong"]["detector"]  # both files: MathDial adds 2 false alarms
    baseline = numbers["accepts_wrong"]["opener baseline"]
    assert (numbers["rows"], detector["n"], detector["positives"]) == (209, 198, 32)
    assert (detector["tp"], detector["fp"], detector["fn"]) == (30, 2, 2)
    assert detector["f1"] == 0.938 and baseline["f1"] == 0.897
    assert detector["f1"] >= 0.8 and detector["f1"] > baseline["f1"]
    accepts = numbers["accepts"]
    assert accepts["detector"]["f1"] == 0.94 and accepts["opener baseline"]["f1"] == 0.789
    # Turns without a claim: scored once they read {"none": 7, "true": 2, "false": 2}; the two
    # False were "I have no idea how to do this one." (read as a claim). "I have no idea/clue" is
    # a no-claim opener since (the only change after the scoring; the F1 figures above are
    # untouched). Two MathDial turns still read as claims ("Yes, that's correct. I understand
    # now.", a plan; True).
    assert numbers["no_claim"] == {"none": 9, "true": 2, "false": 0}


def test_dev_files_by_file_with_the_baseline_printed(repo_root, tmp_path, capsys) -> None:
    files = [str(repo_root / "data" / "claims" / f"{name}-dev.jsonl")
             for name in ("written", "mathdial")]  # fmt: skip
    out = tmp_path / "claims.json"
    assert main(["eval", "claim-agreement", *files, "--by-file", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count('"accepts a wrong claim"') == 3  # two files, then all together
    assert "opener baseline" in text and "confusion (detector)" in text
    numbers = json.loads(out.read_text())
    assert set(numbers["by_file"]) == set(files)
    detector = numbers["accepts_wrong"]["detector"]
    assert detector["n"] + sum(numbers["no_claim"].values()) == numbers["rows"]
    assert detector["f1"] >= numbers["accepts_wrong"]["opener baseline"]["f1"]
    assert numbers["no_claim"]["false"] == 0  # a turn without a claim is never "does not accept"


def test_every_labelled_row_is_valid(repo_root) -> None:
    rows = read_claim_rows(sorted((repo_root / "data" / "claims").glob("*.jsonl")))
    assert len({r.id for r in rows}) == len(rows)
    for claim in ("right", "wrong", "none"):
        assert sum(r.claim == claim for r in rows) >= 10
    assert sum(r.claim == "wrong" and r.label for r in rows) >= 50  # accepted wrong claims


def test_opener_baseline() -> None:
    assert opener_rule("Yes, that's right. What's 5 minus 25?")
    assert opener_rule("Great! Next one.")
    assert not opener_rule("Great try, but check 8 x 8.")
    assert not opener_rule("What is 8 x 8?")


_REPLY = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]


@pytest.mark.parametrize(
    ("row", "error"),
    [
        ({"messages": [{"role": "user", "content": "hi"}], "claim": "wrong", "label": True},
         r"x\.jsonl:1: messages: must end with the tutor's \(assistant\) reply"),
        ({"messages": _REPLY, "label": True}, r"x\.jsonl:1: claim: expected one of right, wrong"),
        ({"messages": _REPLY, "claim": "wrong"}, r"x\.jsonl:1: label: missing"),
        ({"messages": _REPLY, "claim": "wrong", "label": None}, r"x\.jsonl:1: label: null only"),
        ({"messages": _REPLY, "claim": "none", "label": False}, r"x\.jsonl:1: label: expected null"),
        ({"messages": _REPLY, "claim": "right", "label": "maybe"},
         r"x\.jsonl:1: label: expected true/false"),
    ],
)  # fmt: skip
def test_bad_rows_give_one_line_errors(tmp_path, capsys, row, error) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=error):
        read_claim_rows([path])
    assert main(["eval", "claim-agreement", str(path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_help_names_the_baseline(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "claim-agreement", "--help"])
    text = capsys.readouterr().out
    assert "--by-file" in text and "opener" in text


def _item(move: str, student: str, reference: str) -> object:
    return parse_item({"id": "c1", "subject": "arithmetic", "kind": "claim", "good_move": move,
                       "messages": [{"role": "user", "content": student}],
                       "reference_answer": reference}, "f:1")  # fmt: skip


def test_an_accepted_wrong_claim_is_no_guiding_move() -> None:
    wrong = _item("guide", "The square root of 81 is 8, yes?", "9")
    assert wrong.score("Right. What about the square of 9?")["good_move_made"] is False
    assert wrong.score("Are you sure? What is 8 x 8?")["good_move_made"] is True
    probe = _item("probe", "The square root of 81 is 8, yes?", "9")
    assert probe.score("Hmm, what is 8 x 8?")["good_move_made"] is True
    assert probe.score("Yes! And what is 9 squared?")["good_move_made"] is False
    right = _item("guide", "The square root of 81 is 9, yes?", "9")
    assert right.score("Right. What about the square of 8?")["good_move_made"] is True


def test_eval_score_writes_the_claim_keys_for_every_row(tmp_path) -> None:
    rows = [{"messages": [{"role": "user", "content": "The square root of 81 is 8, yes?"},
                          {"role": "assistant", "content": "Right. What about 9 squared?"}],
             "reference_answer": "9"},
            {"messages": [{"role": "user", "content": "How do I start?"},
                          {"role": "assistant", "content": "What do you know?"}]}]  # fmt: skip
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["eval", "score", str(src), "--out", str(out)]) == 0
    first, second = (json.loads(line)["metrics"] for line in out.read_text().splitlines())
    assert first["accepts_student_claim"] is True and first["verdict"]["rule"] == "accept"
    assert first["student_claim_correct"] is False and first["affirms_wrong"] is True
    assert first["confirms_right"] is None
    assert second["accepts_student_claim"] is None and second["verdict"]["rule"] == "no-claim"
    keys = ("student_claim_correct", "affirms_wrong", "confirms_right")
    assert all(second[k] is None for k in keys)
