"""The report on student claims: `affirms_wrong` and `confirms_right` per endpoint with n, McNemar's
exact test of base against tuned (p worked out by hand), not applicable versus missing (a failed
reply, a claim the detector does not find), claims.png (none for a run without claims), and
`mcnemar` itself. The verdict detector
stands in as a phrase rule here (the report's job is the counting; tests/tutor cover the detector).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation import tasks
from evaluation.report import summarise, write_report
from evaluation.stats import is_binary, mcnemar

ACCEPT, PROBE = "Yes, that's right. What next?", "How could you check it?"


@pytest.fixture
def phrase_detector(monkeypatch):
    """`accepts_student_claim`: True for a reply starting 'Yes', None for a student turn without
    'right?' (no claim), else False."""
    real = tasks.score_response

    def score(messages, reference):
        metrics = real(messages, reference)
        claim = "right?" in messages[-2]["content"]
        metrics["accepts_student_claim"] = (
            messages[-1]["content"].startswith("Yes") if claim else None
        )
        return metrics

    monkeypatch.setattr(tasks, "score_response", score)


def _item(n: int, right: bool, claim: bool = True) -> dict:
    turn = f"{n} + {n} = {2 * n if right else 2 * n + 1}" + (", right?" if claim else ".")
    return {"id": f"c{n}", "subject": "arithmetic", "kind": "claim_right" if right else "claim_wrong",
            "good_move": "confirm" if right else "probe", "reference_answer": str(2 * n),
            "scenario": {"problem": f"{n} + {n}"}, "messages": [{"role": "user", "content": turn}]}  # fmt: skip


def _run(root: Path) -> Path:
    """Six wrong claims (base accepts c1, tuned accepts all six; tuned's reply to c6 failed), four
    right ones (both accept c7 and c8) and one wrong claim the detector does not see (c11)."""
    root.mkdir()
    rows = []
    items = [_item(n, right=False) for n in range(1, 7)] + [_item(n, True) for n in range(7, 11)]
    for item in [*items, _item(11, right=False, claim=False)]:
        n = int(item["id"][1:])
        base = ACCEPT if n in (1, 7, 8) else PROBE
        tuned = ACCEPT if n <= 8 or n == 11 else PROBE
        for endpoint, reply in (("base", base), ("tuned", tuned)):
            failed = endpoint == "tuned" and n == 6
            rows.append({**item, "endpoint": endpoint, "response": None if failed else reply,
                         "error": "HTTP 500" if failed else None})  # fmt: skip
    (root / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"endpoints": ["base", "tuned"], "models": {}, "eval_set": "x", "items": 11,
              "limit": None, "sampling": {}}  # fmt: skip
    (root / "run.json").write_text(json.dumps(config))
    return root


def test_claims_per_endpoint_and_mcnemar(tmp_path, phrase_detector) -> None:
    flat, summary = summarise(_run(tmp_path / "run"))
    base, tuned = summary["per_endpoint"]["base"], summary["per_endpoint"]["tuned"]
    assert (base["affirms_wrong"]["n"], base["affirms_wrong"]["mean"]) == (6, 1 / 6)
    assert (tuned["affirms_wrong"]["n"], tuned["affirms_wrong"]["missing"]) == (5, 1)
    assert tuned["affirms_wrong"]["mean"] == 1.0
    # right claims and the unseen claim are not applicable to affirms_wrong: 4 + 1
    assert base["affirms_wrong"]["not_applicable"] == 5
    assert (base["confirms_right"]["n"], base["confirms_right"]["mean"]) == (4, 0.5)
    assert summary["counts"]["claim_not_found"] == 1 and summary["counts"]["claim_items"] == 11
    # probe is made when the wrong claim is not accepted (and the answer is not handed over)
    moves = {r["id"]: r["good_move_made"] for r in flat if r["endpoint"] == "base"}
    assert moves["c1"] == 0.0 and moves["c2"] == 1.0
    test = summary["comparisons"]["tuned vs base"]["affirms_wrong"]["mcnemar"]
    # pairs c1..c5 (c6 failed on tuned): only tuned accepts c2..c5 -> 4 discordant, p = 2 / 2^4
    assert (test["n"], test["a_only"], test["b_only"]) == (5, 0, 4)
    assert test["p"] == pytest.approx(0.125)
    assert summary["comparisons"]["tuned vs base"]["confirms_right"]["mcnemar"]["p"] == 1.0


def test_report_shows_the_claims_and_plots_them(tmp_path, phrase_detector) -> None:
    run = _run(tmp_path / "run")
    report = write_report(run).read_text()
    assert "## Student claims: does the tutor accept a wrong answer?" in report
    assert "| base | 0.167 [" in report and "n=6 |" in report
    assert "| tuned vs base | p=0.125 (0 / 4, n=5) | p=1.000 (0 / 0, n=4) |" in report
    assert "the verdict detector found no claim in 1 of them" in report
    png = (run / "claims.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_a_run_without_claims_has_no_claims_section(tmp_path) -> None:
    root = tmp_path / "run"
    root.mkdir()
    item = {"id": "h1", "subject": "arithmetic", "kind": "homework", "reference_answer": "12",
            "messages": [{"role": "user", "content": "What is 3 x 4?"}]}  # fmt: skip
    rows = [{**item, "endpoint": e, "response": "What is 3 + 3 + 3 + 3?", "error": None}
            for e in ("base", "tuned")]  # fmt: skip
    (root / "responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "run.json").write_text(json.dumps({"endpoints": ["base", "tuned"], "models": {},
                                   "eval_set": "x", "items": 1, "limit": None, "sampling": {}}))  # fmt: skip
    assert "Student claims" not in write_report(root).read_text()
    assert not (root / "claims.png").exists()


def test_mcnemar_by_hand() -> None:
    a = [1, 1, 1, 0, 0, 0, 1, math.nan]
    b = [0, 0, 0, 0, 1, 1, 1, 1]
    t = mcnemar(a, b)  # 3 only in a, 2 only in b: p = P(X <= 2 or X >= 3 | 5, 1/2) = 1
    assert (t["n"], t["a_only"], t["b_only"], t["p"]) == (7, 3, 2, 1.0)
    t = mcnemar([1] * 7, [0] * 7)  # 7 discordant, all one way: 2 / 2^7
    assert t["p"] == pytest.approx(2 / 128)
    assert mcnemar([0, 1], [0, 1])["p"] == 1.0  # no discordant pair
    assert is_binary([0, 1.0, math.nan]) and not is_binary([0, 0.5]) and not is_binary([])
    with pytest.raises(ValueError, match="0/1"):
        mcnemar([0, 2], [1, 1])


def test_report_and_report_md_import_no_circle() -> None:
    code = "import sys, evaluation.report_md; assert 'evaluation.report' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
