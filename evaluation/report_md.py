"""Markdown rendering of an evaluation summary (`report.md`); see `evaluation.report`."""

from __future__ import annotations

import math

LOWER_IS_BETTER = {"reveals_answer", "judge_revealing_of_the_answer"}

EXPLAIN = {
    "asks_question": "share of replies that ask the student a question",
    "reveals_answer": "share of replies that give the reference answer away (lower is better)",
    "good_move_made": "multi-turn: the reply makes the right next move (guide/confirm/encourage)",
    "question_count": "questions per reply",
    "words": "words per reply",
    "judge_socratic": "LLM judge: Socratic-ness, 0-1",
    "judge_helpfulness": "LLM judge: helpfulness, 0-1",
}


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _p(value) -> str:
    return "–" if value is None else ("<0.001" if value < 0.001 else f"{value:.3f}")


def _ci(ci: list[float]) -> str:
    return f"[{_f(ci[0])}, {_f(ci[1])}]"


def render_markdown(summary: dict) -> str:
    run, endpoints = summary["run"], summary["endpoints"]
    named = ", ".join(f"`{e}` ({run['models'].get(e, '?')})" for e in endpoints)
    lines = [
        "# Evaluation report",
        "",
        f"Endpoints: {named}. "
        f"Items: {run['items']} from `{run['eval_set']}`"
        + (f" (first {run['limit']} per file)" if run.get("limit") else "")
        + f". Sampling: {run['sampling']}.",
        "",
        f"Replies: {summary['counts']['replies']}, failed after retries: "
        f"{summary['counts']['failed_replies']}."
        + (
            f" Judged: {summary['counts']['judged']}, judge missing (failed or unparseable "
            f"after retries, not scored): {summary['counts']['judge_missing']}."
            if "judged" in summary["counts"]
            else ""
        ),
        "",
        _applicability(summary["counts"]),
        "",
        "## Means per endpoint (bootstrap 95% CI)",
        "",
        "| metric | " + " | ".join(endpoints) + " | what it is |",
        "|---|" + "---|" * len(endpoints) + "---|",
    ]
    for m in summary["metrics"]:
        cells = []
        for e in endpoints:
            d = summary["per_endpoint"][e][m]
            missing = f" missing={d['missing']}" if d["missing"] else ""
            cells.append(f"{_f(d['mean'])} {_ci(d['ci95'])} n={d['n']}{missing}")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {EXPLAIN.get(m, '')} |")
    for name, comp in summary["comparisons"].items():
        lines += _comparison_table(name, comp)
    lines += _subject_tables(summary)
    lines += _simulation_table(summary)
    lines += ["", "![metrics](metrics.png)", ""]
    if summary["per_subject"]:
        lines += ["![per subject](subjects.png)", ""]
    return "\n".join(lines) + "\n"


def _applicability(counts: dict) -> str:
    """What n leaves out: items a metric does not apply to are excluded, not missing."""
    return (
        "`reveals_answer` is not measurable on "
        f"{counts.get('reveal_not_measurable', 0)} item(s) whose reference answer already "
        "appears in the problem (a reply stating it would read as a restatement) and undefined on "
        f"{counts.get('reveal_no_reference', 0)} item(s) without a reference; `good_move_made` "
        "applies to multi-turn items only. These are excluded from n, not counted as missing."
    )


def _comparison_table(name: str, comp: dict) -> list[str]:
    lines = [
        "",
        f"## Paired comparison: {name}",
        "",
        "Difference = second minus first, on items both answered. Wilcoxon signed-rank and paired "
        "t-test p-values (two-sided); effect size d_z = mean difference / SD of differences.",
        "",
        "| metric | n | mean diff [95% CI] | Wilcoxon p | t-test p | d_z | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, c in comp.items():
        note = "zero variance: identical differences, not tested" if c["zero_variance"] else ""
        if m in LOWER_IS_BETTER and not note:
            note = "lower is better"
        lines.append(
            f"| {m} | {c['n']} | {_f(c['mean_diff'])} {_ci(c['ci95_diff'])} | "
            f"{_p(c['wilcoxon_p'])} | {_p(c['ttest_p'])} | {_f(c['cohens_dz'], 2)} | {note} |"
        )
    return lines


def _subject_tables(summary: dict) -> list[str]:
    lines = []
    endpoints = summary["endpoints"]
    for m, by_subject in summary["per_subject"].items():
        lines += ["", f"## Per subject: {m}", "", "| subject | " + " | ".join(endpoints) + " |"]
        lines.append("|---|" + "---|" * len(endpoints))
        for s, by_e in by_subject.items():
            lines.append(f"| {s} | " + " | ".join(_f(by_e[e], 2) for e in endpoints) + " |")
    return lines


def _simulation_table(summary: dict) -> list[str]:
    sim = summary.get("simulation")
    if not sim:
        return []
    lines = [
        "",
        "## Simulated students",
        "",
        "success@k: the student states the correct answer within k tutor turns; telling@k: the "
        "tutor stated it first (lower is better).",
        "",
        "| endpoint | k | dialogues | failed | success@k [95% CI] | telling@k [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for e, s in sim.items():
        lines.append(
            f"| {e} | {s['k']} | {s['dialogues']} | {s['failed']} | "
            f"{_f(s['success_at_k']['mean'])} {_ci(s['success_at_k']['ci95'])} | "
            f"{_f(s['telling_at_k']['mean'])} {_ci(s['telling_at_k']['ci95'])} |"
        )
    return lines
