"""`socratic eval leak-agreement`: the answer-leak detector against the project's human-labelled
set in data/leak (the detector beats the naive number-match baseline by a clear margin on the
test split it was not tuned on), the confusion table and JSON numbers, and one-line errors
naming the file:line and field of a bad row (the reader the agreement commands share: an empty
input, and the judge's --limit that never reads past its rows)."""

from __future__ import annotations

import json

import pytest

from evaluation.leak import parse_label, read_labelled
from tutor.cli import main
from tutor.io import DataError


def test_detector_beats_the_naive_baseline_on_the_test_split(repo_root, tmp_path, capsys):
    files = [str(repo_root / "data" / "leak" / f"{name}-test.jsonl")
             for name in ("written", "mathdial")]  # fmt: skip
    out = tmp_path / "leak.json"
    assert main(["eval", "leak-agreement", *files, "--json", str(out), "--examples", "2"]) == 0
    text = capsys.readouterr().out
    assert "confusion (detector)" in text and "[missed]" in text
    numbers = json.loads(out.read_text())["metrics"]
    detector, naive = numbers["detector"], numbers["reference number in reply"]
    assert numbers["detector"]["n"] == 295 and detector["positives"] == 83
    # measured on the untouched test split: detector F1 0.85, baseline 0.65 (docs/evaluation.md)
    assert detector["f1"] >= 0.8 and detector["f1"] >= naive["f1"] + 0.15
    assert numbers["detector, no reference"]["f1"] >= 0.75  # without any reference answer


def test_every_labelled_row_is_valid(repo_root) -> None:
    rows = read_labelled(sorted((repo_root / "data" / "leak").glob("*.jsonl")))
    assert len(rows) >= 700 and len({r.id for r in rows}) == len(rows)
    assert 0.2 < sum(r.label for r in rows) / len(rows) < 0.5  # many hard negatives
    assert sum(r.reference is None for r in rows) >= 100  # rows without a reference answer


@pytest.mark.parametrize(
    ("row", "error"),
    [
        ({"messages": [{"role": "user", "content": "hi"}], "label": True},
         r"x\.jsonl:1: messages: must end with the tutor's \(assistant\) reply"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]},
         r"x\.jsonl:1: label: missing"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}],
          "label": "maybe"}, r"x\.jsonl:1: label: expected true/false"),
        ({"messages": [{"role": "bot", "content": "hi"}], "label": 1},
         r"x\.jsonl:1: messages\[0\]\.role"),
    ],
)  # fmt: skip
def test_bad_rows_give_one_line_errors(tmp_path, capsys, row, error) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=error):
        read_labelled([path])
    assert main(["eval", "leak-agreement", str(path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_labels_in_several_spellings() -> None:
    yes = [True, 1, "yes", "TRUE", "yes (correct)", "yes (incorrect)"]
    assert all(parse_label(v, "f:1") for v in yes)
    assert not any(parse_label(v, "f:1") for v in [False, 0, "no", "false"])


def test_the_labelled_readers_share_their_errors_and_the_judge_limit(tmp_path) -> None:
    from evaluation.claim_agreement import read_claim_rows
    from evaluation.judge_agreement import read_judge_rows

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for read in (read_labelled, read_claim_rows, read_judge_rows):
        with pytest.raises(DataError, match=r"empty\.jsonl: no rows"):
            read([empty])
    good = {"messages": [{"role": "user", "content": "2+2?"},
                         {"role": "assistant", "content": "What do you get?"}], "label": False}  # fmt: skip
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps(good) + "\nnot json\n")
    assert len(read_judge_rows([mixed], limit=1)) == 1  # the bad second row is never read
    with pytest.raises(DataError, match=r"mixed\.jsonl:2: not valid JSON"):
        read_judge_rows([mixed])
