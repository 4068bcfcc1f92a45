"""`socratic eval judge-agreement` against a scripted fake judge on 127.0.0.1: per-dimension
accuracy, macro-F1 and Cohen's kappa between the judge and human labels (values worked out by
hand), MRBench's mistake identification against data/claims-shaped labels (with the judge's
precision/recall/F1 for "misses the mistake"), a judgement that stays invalid counted as missing
(never guessed), bad human labels named by file:line, and `label_agreement` on its own."""

from __future__ import annotations

import json
import math

import pytest

from evaluation.judge import DIMENSIONS
from evaluation.judge_agreement import read_judge_rows
from evaluation.stats import label_agreement
from tutor.cli import main
from tutor.io import DataError

QUESTION = {"role": "user", "content": "What is 9 x 8? I think it's 63."}
# (reply, human leak label, human tone label)
ROWS = [
    ("9 x 8 = 72.", True, "neutral"),
    ("What is 9 x 7?", False, "encouraging"),
    ("Great try! What is 9 x 7?", False, "encouraging"),
    ("The answer is 72, well done.", True, "encouraging"),
    ("BROKEN", False, "neutral"),  # the judge never returns a valid judgement for this one
]


def scripted_judge(body: dict) -> tuple[int, str, float]:
    """Reveals when the reply holds 72; encouraging when it praises; garbage for BROKEN."""
    reply = body["messages"][-1]["content"].split("TUTOR REPLY TO GRADE:\n", 1)[1]
    if "BROKEN" in reply:
        return 200, "{not json", 0
    labels = {dim: labels[-1] for dim, labels in DIMENSIONS.items()}
    labels["revealing_of_the_answer"] = "yes (correct)" if "72" in reply else "no"
    labels["tutor_tone"] = (
        "encouraging" if ("Great" in reply or "well done" in reply) else "neutral"
    )
    judgement = {"socratic": {"score": 0.5, "rationale": "r"},
                 "helpfulness": {"score": 0.5, "rationale": "r"},
                 **{d: {"label": lab, "rationale": "r"} for d, lab in labels.items()}}  # fmt: skip
    return 200, json.dumps(judgement), 0


def write_rows(path) -> None:
    lines = []
    for i, (reply, leak, tone) in enumerate(ROWS):
        lines.append({"id": f"j{i}", "messages": [QUESTION, {"role": "assistant", "content": reply}],
                      "reference_answer": None, "label": leak, "labels": {"tutor_tone": tone}})  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_judge_agreement_per_dimension(tmp_path, fake_openai, capsys) -> None:
    judge = fake_openai(scripted_judge, model="judge")
    write_rows(tmp_path / "labelled.jsonl")
    args = ["eval", "judge-agreement", str(tmp_path / "labelled.jsonl"), "--judge-url", judge.url,
            "--attempts", "2", "--out", str(tmp_path / "judged.jsonl"),
            "--json", str(tmp_path / "table.json")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "judge: judge" in out and "4 judged, 1 missing" in out
    table = json.loads((tmp_path / "table.json").read_text())
    assert set(table) == {"tutor_tone", "revealing (yes/no)"}
    leak = table["revealing (yes/no)"]
    assert (leak["n"], leak["missing"], leak["accuracy"], leak["kappa"]) == (4, 1, 1.0, 1.0)
    tone = table["tutor_tone"]
    # human: neutral, enc, enc, enc; judge: neutral, neutral, enc, enc -> 3 of 4 agree;
    # chance agreement (1*2 + 3*2) / 16 = 0.5, so kappa = (0.75 - 0.5) / 0.5 = 0.5;
    # F1 neutral 2/3, encouraging 4/5 -> macro-F1 11/15.
    assert (tone["n"], tone["missing"], tone["accuracy"], tone["kappa"]) == (4, 1, 0.75, 0.5)
    assert tone["macro_f1"] == pytest.approx(11 / 15)
    judged = [json.loads(line) for line in (tmp_path / "judged.jsonl").read_text().splitlines()]
    assert [r["judgement"] is None for r in judged] == [False, False, False, False, True]
    assert judged[-1]["error"] and len(judge.requests) == 4 + 2  # BROKEN was tried twice


def test_bad_human_labels_are_named(tmp_path) -> None:
    row = {"messages": [QUESTION, {"role": "assistant", "content": "Hm?"}],
           "labels": {"tutor_tone": "grumpy"}}  # fmt: skip
    (tmp_path / "x.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"x\.jsonl:1: labels\.tutor_tone: expected one of"):
        read_judge_rows([tmp_path / "x.jsonl"])
    row["labels"] = {"politeness": "yes"}
    (tmp_path / "x.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"labels\.politeness: unknown dimension"):
        read_judge_rows([tmp_path / "x.jsonl"])


def test_label_agreement_by_hand() -> None:
    s = label_agreement([("a", "a"), ("a", "b"), ("b", "b"), ("b", "b")])
    assert (s["n"], s["accuracy"], s["kappa"]) == (4, 0.75, 0.5)
    assert s["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    same = label_agreement([("no", "no"), ("no", "no")])
    assert same["accuracy"] == 1.0 and math.isnan(same["kappa"])  # one label: kappa undefined
    assert label_agreement([])["n"] == 0


WRONG_CLAIM = {"role": "user", "content": "7 x 8 = 54, right?"}
RIGHT_CLAIM = {"role": "user", "content": "7 x 8 = 56, right?"}
NO_CLAIM = {"role": "user", "content": "What is 7 x 8?"}
# data/claims rows: (student turn, reply, claim, label = the reply accepts the claim)
CLAIM_ROWS = [
    (WRONG_CLAIM, "Yes, that's right.", "wrong", True),
    (WRONG_CLAIM, "Not quite. Check 7 x 8 again?", "wrong", False),
    (WRONG_CLAIM, "Hmm, how did you get 54?", "wrong", False),
    (WRONG_CLAIM, "Great! Next: 7 x 9?", "wrong", True),  # the judge is fooled by this one
    (RIGHT_CLAIM, "Yes, 56 is right.", "right", True),
    (NO_CLAIM, "Let's count in sevens.", "none", None),
]


def mistake_judge(body: dict) -> tuple[int, str, float]:
    """MRBench's mistake identification by phrase: a scripted judge."""
    reply = body["messages"][-1]["content"].split("TUTOR REPLY TO GRADE:\n", 1)[1]
    label = next(lab for start, lab in (("Yes, 56", "not applicable"), ("Yes", "no"),
                 ("Not", "yes"), ("Hmm", "to some extent"), ("Great", "yes"), ("Let's", "no"))
                 if reply.startswith(start))  # fmt: skip
    judgement = {"socratic": {"score": 0.5, "rationale": "r"},
                 "helpfulness": {"score": 0.5, "rationale": "r"},
                 **{d: {"label": labels[0], "rationale": "r"} for d, labels in DIMENSIONS.items()},
                 "mistake_identification": {"label": label, "rationale": "r"}}  # fmt: skip
    return 200, json.dumps(judgement), 0


def test_mistake_identification_against_the_claims_labels(tmp_path, fake_openai, capsys) -> None:
    judge = fake_openai(mistake_judge, model="judge")
    rows = [{"id": f"c{i}", "messages": [turn, {"role": "assistant", "content": reply}],
             "reference_answer": "56", "claim": claim, "label": label}
            for i, (turn, reply, claim, label) in enumerate(CLAIM_ROWS)]  # fmt: skip
    (tmp_path / "claims.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["eval", "judge-agreement", str(tmp_path / "claims.jsonl"), "--judge-url", judge.url,
            "--json", str(tmp_path / "table.json")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    table = json.loads((tmp_path / "table.json").read_text())
    assert set(table) == {"mistake identified (yes/no)", "mistake identified (yes/no/n.a.)"}
    yes_no = table["mistake identified (yes/no)"]
    # wrong claims: people no, yes, yes, no; judge no, yes, yes ("to some extent"), yes
    assert (yes_no["n"], yes_no["accuracy"]) == (4, 0.75)
    misses = yes_no["misses"]  # "no": the judge's misses; 1 of the people's 2 found, no false alarm
    assert (misses["tp"], misses["fp"], misses["fn"]) == (1, 0, 1)
    assert (misses["precision"], misses["recall"]) == (1.0, 0.5)
    assert misses["f1"] == pytest.approx(2 / 3)
    # every row: the right claim is n.a. on both sides, the turn without a claim is not for the judge
    assert table["mistake identified (yes/no/n.a.)"]["accuracy"] == pytest.approx(4 / 6)
    assert "judge misses the mistake (accepts a wrong claim): precision 1.000, recall 0.500" in out


def test_bad_claim_rows_are_named(tmp_path) -> None:
    row = {"messages": [WRONG_CLAIM, {"role": "assistant", "content": "Hm?"}], "claim": "maybe",
           "label": True}  # fmt: skip
    (tmp_path / "c.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"c\.jsonl:1: claim: expected one of right \| wrong"):
        read_judge_rows([tmp_path / "c.jsonl"])
    (tmp_path / "c.jsonl").write_text(json.dumps({**row, "claim": "none"}) + "\n")
    with pytest.raises(DataError, match=r"c\.jsonl:1: label: expected null exactly when"):
        read_judge_rows([tmp_path / "c.jsonl"])
