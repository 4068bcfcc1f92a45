"""PNG plots of an evaluation summary (matplotlib, Agg backend): metric means with bootstrap 95%
CIs per endpoint, a per-subject heat map and the student-claims panel (affirms_wrong and
confirms_right per endpoint). Called by `evaluation.report.write_report`.
"""

from __future__ import annotations

import math
from pathlib import Path

RATE_METRICS_MAX = 1.0  # rates and judge scores live in [0, 1]; counts get their own panel
CLAIM_LABELS = {"affirms_wrong": "affirms a wrong claim\n(lower is better)",
                "confirms_right": "confirms a right claim"}  # fmt: skip


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(summary: dict, out: Path) -> None:
    """Grouped bars: one group per metric, one bar per endpoint, whiskers = bootstrap 95% CI."""
    plt = _pyplot()
    endpoints, per = summary["endpoints"], summary["per_endpoint"]
    rates = [m for m in summary["metrics"] if m not in ("question_count", "words")]
    counts = [m for m in ("question_count", "words") if m in summary["metrics"]]
    fig, axes = plt.subplots(
        1, 1 + len(counts), figsize=(max(6, 0.9 * len(rates) + 3 * len(counts)), 4.5),
        gridspec_kw={"width_ratios": [max(len(rates), 1)] + [1] * len(counts)}, squeeze=False,
    )  # fmt: skip
    for ax, names in zip(axes[0], [rates, *[[c] for c in counts]], strict=True):
        width = 0.8 / max(len(endpoints), 1)
        for k, e in enumerate(endpoints):
            means = [per[e][m]["mean"] for m in names]
            lo = [_gap(per[e][m]["mean"], per[e][m]["ci95"][0]) for m in names]
            hi = [_gap(per[e][m]["ci95"][1], per[e][m]["mean"]) for m in names]
            xs = [i + (k - (len(endpoints) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, [0 if math.isnan(v) else v for v in means], width, yerr=[lo, hi],
                   capsize=3, label=e)  # fmt: skip
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n.replace("judge_", "J:") for n in names], rotation=45, ha="right")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylim(0, RATE_METRICS_MAX * 1.05)
    axes[0][0].set_ylabel("mean (rate or 0-1 score), 95% bootstrap CI")
    axes[0][0].legend(title="endpoint")
    fig.suptitle("Tutor metrics per endpoint")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _gap(a: float, b: float) -> float:
    return 0.0 if math.isnan(a) or math.isnan(b) else max(a - b, 0.0)


def plot_subjects(summary: dict, out: Path) -> None:
    """One heat map per metric: subjects x endpoints, cell = mean, annotated."""
    plt = _pyplot()
    endpoints, per_subject = summary["endpoints"], summary["per_subject"]
    metrics = list(per_subject)
    subjects = sorted(next(iter(per_subject.values())))
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(1.2 + (1.1 + 0.9 * len(endpoints)) * len(metrics),
                                  1.5 + 0.35 * len(subjects)), squeeze=False,
    )  # fmt: skip
    for ax, m in zip(axes[0], metrics, strict=True):
        grid = [[per_subject[m][s][e] for e in endpoints] for s in subjects]
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                text = "–" if math.isnan(v) else f"{v:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if not math.isnan(v) and v < 0.5 else "black")  # fmt: skip
        ax.set_xticks(range(len(endpoints)))
        ax.set_xticklabels(endpoints, rotation=30, ha="right")
        ax.set_yticks(range(len(subjects)))
        ax.set_yticklabels(subjects if ax is axes[0][0] else [])
        ax.set_title(m.replace("judge_", "judge: "), fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="mean per subject")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_claims(summary: dict, out: Path) -> None:
    """affirms_wrong and confirms_right: one bar per endpoint, whiskers = bootstrap 95% CI, each
    bar labelled with its mean and n; McNemar's p of each comparison in the title."""
    plt = _pyplot()
    endpoints, per = summary["endpoints"], summary["per_endpoint"]
    names = [m for m in ("affirms_wrong", "confirms_right") if m in summary["metrics"]]
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(names) * max(len(endpoints), 1) / 2, 4.2))
    width = 0.8 / max(len(endpoints), 1)
    for k, e in enumerate(endpoints):
        stats = [per[e][m] for m in names]
        xs = [i + (k - (len(endpoints) - 1) / 2) * width for i in range(len(names))]
        means = [0 if math.isnan(d["mean"]) else d["mean"] for d in stats]
        lo = [_gap(d["mean"], d["ci95"][0]) for d in stats]
        hi = [_gap(d["ci95"][1], d["mean"]) for d in stats]
        ax.bar(xs, means, width, yerr=[lo, hi], capsize=3, label=e)
        for x, d in zip(xs, stats, strict=True):
            text = "–" if math.isnan(d["mean"]) else f"{d['mean']:.2f}\nn={d['n']}"
            top = 0.0 if math.isnan(d["ci95"][1]) else d["ci95"][1]
            ax.text(x, top + 0.02, text, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([CLAIM_LABELS[m] for m in names])
    ax.set_ylim(0, 1.2)  # room for the labels above a CI that reaches 1
    ax.set_ylabel("share of replies, 95% bootstrap CI")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="endpoint", fontsize=8)
    tests = [  # one line per comparison, p of each metric in the order of the bars
        f"McNemar {name}: " + ", ".join(f"p{_pvalue(c[m])}" for m in names)
        for name, c in summary["comparisons"].items()
    ]
    ax.set_title("\n".join(["Student claims", *tests]), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _pvalue(comparison: dict) -> str:
    test = comparison.get("mcnemar")
    if not test:
        return " –"
    return "<0.001" if test["p"] < 0.001 else f"={test['p']:.3f}"
