"""Paired statistics against scipy on known data (Wilcoxon, paired t-test, d_z, bootstrap CIs,
zero-variance metrics not tested, missing values dropped pairwise), the report files (markdown
tables, CSV, strict JSON, non-empty PNGs) and the MathDial agreement command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from test_eval_judge_sim import GOOD
from test_eval_runner import write_set

from evaluation.report import write_report
from evaluation.run import run_eval
from evaluation.stats import bootstrap_ci, paired_comparison
from tutor.cli import main

A = [3.1, 2.4, 5.0, 4.2, 3.3, 2.9, 4.8, 3.7, 2.2, 4.1]
B = [3.9, 2.6, 5.8, 4.0, 4.1, 3.8, 5.5, 3.9, 2.9, 4.4]


def test_paired_comparison_matches_scipy() -> None:
    r = paired_comparison(A, B)
    d = np.array(B) - np.array(A)
    assert r["n"] == 10
    assert r["ttest_p"] == pytest.approx(stats.ttest_rel(B, A).pvalue)
    assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon(B, A).pvalue)
    assert r["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert r["mean_diff"] == pytest.approx(d.mean())
    lo, hi = r["ci95_diff"]
    assert lo < d.mean() < hi and lo > 0  # every but one difference is positive
    assert r["zero_variance"] is False


def test_zero_variance_and_missing_values() -> None:
    r = paired_comparison([0, 0, 0, 0], [1, 1, 1, 1])
    assert r["zero_variance"] and r["ttest_p"] is None and r["wilcoxon_p"] is None
    assert r["mean_diff"] == 1.0 and r["ci95_diff"] == [1.0, 1.0]
    r = paired_comparison([1.0, math.nan, 2.0, 3.0, 1.0], [2.0, 5.0, math.nan, 3.5, 4.0])
    assert r["n"] == 3 and r["mean_a"] == pytest.approx(5 / 3)


def test_bootstrap_ci_is_reproducible_and_covers_the_mean() -> None:
    x = np.random.default_rng(1).normal(10, 2, size=200)
    ci = bootstrap_ci(x)
    assert ci == bootstrap_ci(x)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)  # normal-theory CI for comparison
    assert ci[0] == pytest.approx(x.mean() - half, abs=0.1)
    assert ci[1] == pytest.approx(x.mean() + half, abs=0.1)


def test_report_renders(tmp_path, fake_openai) -> None:
    base = fake_openai(lambda b: (200, "It is 3/4.", 0), model="base")
    tuned = fake_openai(lambda b: (200, "What is 1/2 in quarters?", 0), model="tuned")
    run = run_eval({"base": base.url, "tuned": tuned.url}, tmp_path / "run",
                   write_set(tmp_path / "set"), progress=False)  # fmt: skip
    judgements = [{"id": i, "endpoint": e, "judgement": GOOD, "attempts": 1, "error": None}
                  for i in ("s1", "s2", "m1") for e in ("base", "tuned")]  # fmt: skip
    judgements[0] = {**judgements[0], "judgement": None, "error": "garbage"}
    (run / "judgements.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judgements))
    sims = [{"endpoint": e, "id": "m1", "turns": 3, "success": True, "telling": e == "base"}
            for e in ("base", "tuned")]  # fmt: skip
    (run / "simulations.jsonl").write_text("".join(json.dumps(s) + "\n" for s in sims))

    report = write_report(run).read_text()
    assert "| asks_question | 0.000 [0.000, 0.000] n=3 | 1.000 [1.000, 1.000] n=3 |" in report
    assert "## Paired comparison: tuned vs base" in report
    assert "zero variance: identical differences, not tested" in report
    assert "judge missing (failed or unparseable after retries, not scored): 1" in report
    assert "## Per subject: asks_question" in report and "| arithmetic |" in report
    assert "## Simulated students" in report
    for png in ("metrics.png", "subjects.png"):
        data = (run / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    summary = json.loads((run / "summary.json").read_text())  # strict JSON: NaN written as null
    assert summary["per_endpoint"]["base"]["judge_socratic"]["missing"] == 1
    moves = summary["per_endpoint"]["base"]["good_move_made"]  # single-turn items: not applicable
    assert (moves["n"], moves["missing"], moves["not_applicable"]) == (1, 0, 2)
    assert summary["simulation"]["base"]["telling_at_k"]["mean"] == 1.0
    header = (run / "scores.csv").read_text().splitlines()[0]
    assert header.startswith("id,endpoint,subject,kind,asks_question,reveals_answer")


def test_mathdial_agreement(mathdial_file, tmp_path, capsys) -> None:
    sample = tmp_path / "md.jsonl"
    sample.write_text("".join(mathdial_file.read_text().splitlines(keepends=True)[:60]))
    assert (
        main(["eval", "mathdial-agreement", str(sample), "--json", str(tmp_path / "a.json")]) == 0
    )
    assert "reveals_answer~telling" in capsys.readouterr().out
    numbers = json.loads((tmp_path / "a.json").read_text())["metrics"]
    assert numbers["asks_question~focus+probing"]["f1"] > 0.6  # measured 0.74 on all 599
    # measured on all 599: reveals_answer P 0.73 F1 0.40, the reference number baseline F1 0.36
    assert numbers["reveals_answer~telling"]["precision"] > 0.5
    assert "reference_number~telling" in numbers
