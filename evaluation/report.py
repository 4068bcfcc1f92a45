"""`socratic eval report`: paired statistics, tables and plots of an evaluation run.

    socratic eval report reports/RUN

Reads `responses.jsonl` (replies are re-scored with the current offline metrics, so a new metric
needs no new generation) and, when present, `judgements.jsonl` and `simulations.jsonl`. Writes
`report.md`, `scores.csv` (one row per item x endpoint), `summary.json`, `metrics.png` (means with
bootstrap 95% CIs per endpoint) and `subjects.png` (per-subject heat map). The first endpoint is
the baseline; every other endpoint is compared with it on the items both answered.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from evaluation.judge import DIMENSIONS, judgement_scores
from evaluation.stats import describe, paired_comparison
from evaluation.tasks import parse_item
from tutor.io import DataError, atomic_open, read_rows

OFFLINE = ["asks_question", "reveals_answer", "good_move_made", "question_count", "words"]
JUDGE = ["judge_socratic", "judge_helpfulness", *(f"judge_{d}" for d in DIMENSIONS)]
HEATMAP = ["asks_question", "reveals_answer", "judge_socratic", "judge_helpfulness"]
LOWER_IS_BETTER = {"reveals_answer", "judge_revealing_of_the_answer"}


def _load(path: Path) -> list[dict]:
    rows = []
    for row in read_rows(path):
        if row.error:
            raise DataError(f"{row.where}: {row.error}")
        rows.append(row.value)
    return rows


def collect_scores(run_dir: Path) -> tuple[list[dict], dict]:
    """One flat row per item x endpoint (metrics as numbers, NaN = missing) and the counts."""
    rows = _load(run_dir / "responses.jsonl")
    judged: dict[tuple, dict] = {}
    counts = {"replies": len(rows), "failed_replies": sum(1 for r in rows if r.get("error"))}
    if (run_dir / "judgements.jsonl").exists():
        judgements = _load(run_dir / "judgements.jsonl")
        judged = {(j["id"], j["endpoint"]): j["judgement"] for j in judgements if j["judgement"]}
        counts["judged"] = len(judged)
        counts["judge_missing"] = len(judgements) - len(judged)
    flat = []
    for r in rows:
        out = {"id": r["id"], "endpoint": r["endpoint"], "subject": r["subject"], "kind": r["kind"]}
        metrics = {}
        if r.get("response") is not None:
            metrics = parse_item(r, f"{run_dir}/responses.jsonl").score(r["response"])
        for name in OFFLINE:
            value = metrics.get(name)
            out[name] = math.nan if value is None else float(value)
        if judged:
            j = judged.get((r["id"], r["endpoint"]))
            scores = judgement_scores(j) if j else {}
            out.update({name: scores.get(name, math.nan) for name in JUDGE})
        flat.append(out)
    return flat, counts


def _paired(flat: list[dict], metric: str, base: str, other: str) -> dict:
    by_id = {(r["id"], r["endpoint"]): r[metric] for r in flat}
    ids = sorted({r["id"] for r in flat})
    a = [by_id.get((i, base), math.nan) for i in ids]
    b = [by_id.get((i, other), math.nan) for i in ids]
    return paired_comparison(a, b)


def summarise(run_dir: Path) -> tuple[list[dict], dict]:
    """The flat scores and the summary (per-endpoint means, comparisons, per subject, sims)."""
    config = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    flat, counts = collect_scores(run_dir)
    endpoints = list(config["endpoints"])
    metrics = [m for m in OFFLINE + JUDGE if any(m in r and not math.isnan(r[m]) for r in flat)]
    per_endpoint = {
        e: {m: describe([r[m] for r in flat if r["endpoint"] == e]) for m in metrics}
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
    kept = [v for v in values if not math.isnan(v)]
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
    from evaluation.plots import plot_metrics, plot_subjects
    from evaluation.report_md import render_markdown

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
