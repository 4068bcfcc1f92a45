"""`socratic eval report`: paired statistics, tables and plots of an evaluation run.

    socratic eval report reports/RUN

Reads `responses.jsonl` (replies are re-scored with the current offline metrics, so a new metric
needs no new generation) and, when present, `judgements.jsonl` and `simulations.jsonl`. Writes
`report.md`, `scores.csv` (one row per item x endpoint), `summary.json`, `metrics.png` (means with
bootstrap 95% CIs per endpoint), `subjects.png` (per-subject heat map) and, when the run holds
student claims (`data/eval/claims.jsonl`, the multi-turn confirmations), `claims.png`
(`affirms_wrong` and `confirms_right` per endpoint). The first endpoint is the baseline; every
other endpoint is compared with it on the items both answered (0/1 metrics also with McNemar's
exact test).

A metric that does not apply to an item (`good_move_made` on single-turn items, `reveals_answer`
on items without a reference or whose reference already appears in the problem, `affirms_wrong`
on right claims, `confirms_right` on wrong ones and both where the student makes no claim) is
counted as `not_applicable`, outside its n; `missing` is kept for failed replies and judgements.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from evaluation.judge import DIMENSIONS, judgement_scores
from evaluation.report_md import render_markdown
from evaluation.stats import describe, is_binary, mcnemar, paired_comparison
from evaluation.tasks import CLAIM_CORRECT, EvalItem, parse_item
from tutor.io import DataError, atomic_open, read_rows

CLAIM_METRICS = ["affirms_wrong", "confirms_right"]
OFFLINE = ["asks_question", "reveals_answer", "good_move_made", *CLAIM_METRICS, "question_count",
           "words"]  # fmt: skip
JUDGE = ["judge_socratic", "judge_helpfulness", *(f"judge_{d}" for d in DIMENSIONS)]
HEATMAP = ["asks_question", "reveals_answer", "judge_socratic", "judge_helpfulness"]


def _load(path: Path) -> list[dict]:
    rows = []
    for row in read_rows(path):
        if row.error:
            raise DataError(f"{row.where}: {row.error}")
        rows.append(row.value)
    return rows


def _applies(item: EvalItem, metric: str, value) -> bool:
    """Whether `metric` is defined for `item` at all (else: not applicable, never missing).

    A claim metric applies where the item says whether the student's claim is right (confirm and
    probe items: affirms_wrong on wrong claims, confirms_right on right ones); elsewhere where the
    scored reply has a value (the detector's own comparison with the reference), so a failed
    reply of an unlabelled item is not applicable, not missing.
    """
    if metric == "reveals_answer":
        return bool(item.reveal_measurable)
    if metric == "good_move_made":
        return item.good_move is not None
    if metric in CLAIM_METRICS:
        right = CLAIM_CORRECT.get(item.good_move or "")
        if right is None:
            return value is not None
        return right == (metric == "confirms_right")
    return True


def collect_scores(run_dir: Path) -> tuple[list[dict], dict]:
    """One flat row per item x endpoint and the counts.

    Metrics are numbers; NaN = missing (failed reply or judgement), None = not applicable to the
    item (`good_move_made` on single-turn items, `reveals_answer` without a measurable reference).
    """
    rows = _load(run_dir / "responses.jsonl")
    judged: dict[tuple, dict] = {}
    counts = {"replies": len(rows), "failed_replies": sum(1 for r in rows if r.get("error"))}
    if (run_dir / "judgements.jsonl").exists():
        judgements = _load(run_dir / "judgements.jsonl")
        judged = {(j["id"], j["endpoint"]): j["judgement"] for j in judgements if j["judgement"]}
        counts["judged"] = len(judged)
        counts["judge_missing"] = len(judgements) - len(judged)
    flat, items, no_claim = [], {}, set()
    for r in rows:
        item = items[r["id"]] = parse_item(r, f"{run_dir}/responses.jsonl")
        out = {"id": r["id"], "endpoint": r["endpoint"], "subject": r["subject"], "kind": r["kind"]}
        metrics = item.score(r["response"]) if r.get("response") is not None else {}
        # a labelled claim in which the detector finds no claim: not applicable, and counted
        found = metrics.get("accepts_student_claim", True) is not None
        unfound = item.good_move in CLAIM_CORRECT and not found
        if unfound:
            no_claim.add(item.id)
        for name in OFFLINE:
            value = metrics.get(name)
            applies = _applies(item, name, value) and not (unfound and name in CLAIM_METRICS)
            out[name] = _number(value) if applies else None
        if judged:
            j = judged.get((r["id"], r["endpoint"]))
            scores = judgement_scores(j) if j else {}
            out.update({name: scores.get(name, math.nan) for name in JUDGE})
        flat.append(out)
    with_ref = [i for i in items.values() if i.reference_answer is not None]
    counts["reveal_no_reference"] = len(items) - len(with_ref)
    counts["reveal_not_measurable"] = sum(1 for i in with_ref if not i.reveal_measurable)
    counts["claim_items"] = sum(1 for i in items.values() if i.good_move in CLAIM_CORRECT)
    counts["claim_not_found"] = len(no_claim)
    return flat, counts


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _describe(values: list) -> dict:
    """`describe` of the applicable values, plus how many were not applicable."""
    stats = describe([v for v in values if v is not None])
    return {**stats, "not_applicable": sum(1 for v in values if v is None)}


def _paired(flat: list[dict], metric: str, base: str, other: str) -> dict:
    by_id = {(r["id"], r["endpoint"]): r[metric] for r in flat}
    ids = sorted({r["id"] for r in flat})
    a = [_or_nan(by_id.get((i, base))) for i in ids]
    b = [_or_nan(by_id.get((i, other))) for i in ids]
    result = paired_comparison(a, b)
    result["mcnemar"] = mcnemar(a, b) if is_binary(a + b) else None
    return result


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _scored(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def summarise(run_dir: Path) -> tuple[list[dict], dict]:
    """The flat scores and the summary (per-endpoint means, comparisons, per subject, sims)."""
    try:
        config = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # missing or not JSON: a one-line error
        raise DataError(str(e)) from None
    flat, counts = collect_scores(run_dir)
    endpoints = list(config["endpoints"])
    metrics = [m for m in OFFLINE + JUDGE if any(_scored(r.get(m)) for r in flat)]
    per_endpoint = {
        e: {m: _describe([r[m] for r in flat if r["endpoint"] == e]) for m in metrics}
        for e in endpoints
    }
    comparisons = {
        f"{other} vs {endpoints[0]}": {m: _paired(flat, m, endpoints[0], other) for m in metrics}
        for other in endpoints[1:]
    }
    subjects = sorted({r["subject"] for r in flat})
    per_subject = {
        m: {
            s: {e: _mean([r[m] for r in flat if r["subject"] == s and r["endpoint"] == e])
                for e in endpoints}
            for s in subjects
        }
        for m in HEATMAP if m in metrics
    }  # fmt: skip
    summary = {
        "run": config,
        "counts": counts,
        "endpoints": endpoints,
        "metrics": metrics,
        "per_endpoint": per_endpoint,
        "comparisons": comparisons,
        "per_subject": per_subject,
        "simulation": _simulation_summary(run_dir, endpoints),
    }
    return flat, summary


def _mean(values: list[float]) -> float:
    kept = [v for v in values if _scored(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _simulation_summary(run_dir: Path, endpoints: list[str]) -> dict | None:
    path = run_dir / "simulations.jsonl"
    if not path.exists():
        return None
    sims = _load(path)
    out = {}
    for e in endpoints:
        done = [s for s in sims if s["endpoint"] == e and s.get("success") is not None]
        out[e] = {
            "k": max((s["turns"] for s in done), default=0),
            "dialogues": len(done),
            "failed": sum(1 for s in sims if s["endpoint"] == e and s.get("success") is None),
            "success_at_k": describe([float(s["success"]) for s in done]),
            "telling_at_k": describe([float(s["telling"]) for s in done]),
        }
    return out


def write_report(run_dir: str | Path) -> Path:
    """Write report.md, scores.csv, summary.json and the plots into `run_dir`; return report.md."""
    from evaluation.plots import plot_claims, plot_metrics, plot_subjects

    run_dir = Path(run_dir)
    flat, summary = summarise(run_dir)
    columns = ["id", "endpoint", "subject", "kind", *summary["metrics"]]
    with atomic_open(run_dir / "scores.csv") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(flat)
    with atomic_open(run_dir / "summary.json") as f:
        json.dump(_json_safe(summary), f, indent=2)
    plot_metrics(summary, run_dir / "metrics.png")
    if summary["per_subject"]:
        plot_subjects(summary, run_dir / "subjects.png")
    if any(m in summary["metrics"] for m in CLAIM_METRICS):
        plot_claims(summary, run_dir / "claims.png")
    out = run_dir / "report.md"
    with atomic_open(out) as f:
        f.write(render_markdown(summary))
    return out


def _json_safe(value):
    """NaN -> null, so summary.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
