"""Markdown rendering of an evaluation summary (`report.md`); see `evaluation.report`, which
imports this module (never the other way round)."""

from __future__ import annotations

import math

LOWER_IS_BETTER = {"reveals_answer", "affirms_wrong", "judge_revealing_of_the_answer"}
EXPLAIN = {
    "asks_question": "share of replies that ask the student a question",
    "reveals_answer": "share of replies that give the reference answer away (lower is better)",
    "good_move_made": "multi-turn and claims: the reply makes the right next move "
    "(guide/confirm/encourage/probe)",
    "affirms_wrong": "share of replies to a wrong student claim that accept it (lower is better)",
    "confirms_right": "share of replies to a right student claim that accept it",
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
    lines += _claims_section(summary)
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
        "applies to multi-turn and claims items only; `affirms_wrong` to wrong student claims, "
        "`confirms_right` to right ones "
        f"({counts.get('claim_items', 0)} labelled claim item(s); the verdict detector found no "
        f"claim in {counts.get('claim_not_found', 0)} of them). These are excluded from n, not "
        "counted as missing."
    )


def _comparison_table(name: str, comp: dict) -> list[str]:
    lines = [
        "",
        f"## Paired comparison: {name}",
        "",
        "Difference = second minus first, on items both answered. Wilcoxon signed-rank and paired "
        "t-test p-values (two-sided); effect size d_z = mean difference / SD of differences; for "
        "0/1 metrics McNemar's exact test (two-sided) on the discordant items.",
        "",
        "| metric | n | mean diff [95% CI] | Wilcoxon p | t-test p | d_z | McNemar p | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, c in comp.items():
        note = "zero variance: identical differences, not tested" if c["zero_variance"] else ""
        if m in LOWER_IS_BETTER and not note:
            note = "lower is better"
        lines.append(
            f"| {m} | {c['n']} | {_f(c['mean_diff'])} {_ci(c['ci95_diff'])} | "
            f"{_p(c['wilcoxon_p'])} | {_p(c['ttest_p'])} | {_f(c['cohens_dz'], 2)} | "
            f"{_p(c['mcnemar']['p']) if c.get('mcnemar') else '–'} | {note} |"
        )
    return lines


def _claims_section(summary: dict) -> list[str]:
    """affirms_wrong and confirms_right per endpoint, with n and McNemar's test per comparison."""
    claims = [m for m in ("affirms_wrong", "confirms_right") if m in summary["metrics"]]
    if not claims:
        return []
    endpoints = summary["endpoints"]
    lines = [
        "",
        "## Student claims: does the tutor accept a wrong answer?",
        "",
        "The student states an answer and asks whether it is right. affirms_wrong: the reply "
        "accepts a wrong claim (lower is better); confirms_right: it accepts a right one. Mean "
        "[bootstrap 95% CI] and n per endpoint; per comparison McNemar's exact test, with the "
        "items only the first endpoint / only the second accepted.",
        "",
        "| endpoint | " + " | ".join(claims) + " |",
        "|---|" + "---|" * len(claims),
    ]
    for e in endpoints:
        cells = []
        for m in claims:
            d = summary["per_endpoint"][e][m]
            cells.append(f"{_f(d['mean'])} {_ci(d['ci95'])} n={d['n']}")
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    for name, comp in summary["comparisons"].items():
        cells = []
        for m in claims:
            t = comp[m].get("mcnemar")
            if not t:
                cells.append("–")
                continue
            p = _p(t["p"])  # "<0.001" or a number
            p = p if p.startswith("<") else f"={p}"
            cells.append(f"p{p} ({t['a_only']} / {t['b_only']}, n={t['n']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, "", "![student claims](claims.png)"]


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
