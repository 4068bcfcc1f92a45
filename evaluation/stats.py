"""Paired statistics for comparing two endpoints on the same items.

`paired_comparison(a, b)` takes one value per item for each endpoint (same order, NaN = missing,
dropped pairwise) and returns n, both means with bootstrap 95% CIs, the mean difference b - a with
its bootstrap CI, the Wilcoxon signed-rank and paired t-test p-values and Cohen's d_z (mean
difference / SD of the differences). When every difference is zero (or one side is constant and
the test is undefined) the tests are not run and `zero_variance` says so.

`mcnemar(a, b)` is the test for paired yes/no outcomes (0/1 per item, e.g. `affirms_wrong` of
base and tuned on the same claims): the exact two-sided binomial test on the discordant pairs.
"""

from __future__ import annotations

import math
from typing import Any

BOOTSTRAP_RESAMPLES = 10_000


def bootstrap_ci(values, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[float]:
    """Percentile bootstrap 95% CI of the mean; [nan, nan] for no values."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def describe(values) -> dict[str, Any]:
    """n, mean and bootstrap 95% CI of one endpoint's values (NaN dropped)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    return {
        "n": int(x.size),
        "mean": float(x.mean()) if x.size else math.nan,
        "ci95": bootstrap_ci(x),
        "missing": int(np.asarray(values, dtype=float).size - x.size),
    }


def paired_comparison(a, b, seed: int = 0) -> dict[str, Any]:
    """Compare b against a on paired values (see module docstring)."""
    import numpy as np
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    d = b - a
    result: dict[str, Any] = {
        "n": int(d.size),
        "mean_a": float(a.mean()) if d.size else math.nan,
        "mean_b": float(b.mean()) if d.size else math.nan,
        "ci95_a": bootstrap_ci(a, seed=seed),
        "ci95_b": bootstrap_ci(b, seed=seed),
        "mean_diff": float(d.mean()) if d.size else math.nan,
        "ci95_diff": bootstrap_ci(d, seed=seed),
        "zero_variance": bool(d.size and np.all(d == d[0])),
        "wilcoxon_p": None,
        "ttest_p": None,
        "cohens_dz": None,
    }
    if d.size < 2 or result["zero_variance"]:
        # A constant difference has no spread: the t statistic is undefined, Wilcoxon has no
        # ranks (all zero) or is trivially extreme; report the fact instead of a p-value.
        return result
    result["ttest_p"] = float(stats.ttest_rel(b, a).pvalue)
    if np.any(d != 0):
        result["wilcoxon_p"] = float(stats.wilcoxon(b, a, zero_method="wilcox").pvalue)
    result["cohens_dz"] = float(d.mean() / d.std(ddof=1))
    return result


def is_binary(values) -> bool:
    """Whether every non-NaN value is 0 or 1 (and there is at least one)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    return bool(x.size) and bool(np.all((x == 0) | (x == 1)))


def mcnemar(a, b) -> dict[str, Any]:
    """Exact McNemar test of paired 0/1 outcomes (NaN dropped pairwise): n pairs, `a_only` (1 in a,
    0 in b), `b_only` (0 in a, 1 in b) and the two-sided exact p (binomial, 1/2, on a_only +
    b_only discordant pairs; 1.0 when there are none)."""
    import numpy as np
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if not (is_binary(np.r_[a, b]) or a.size == 0):
        raise ValueError("mcnemar: expected 0/1 outcomes")
    a_only, b_only = int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1)))
    discordant = a_only + b_only
    p = float(stats.binomtest(a_only, discordant, 0.5).pvalue) if discordant else 1.0
    return {"n": int(a.size), "a_only": a_only, "b_only": b_only, "p": p}


def label_agreement(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Agreement of paired labels (human, model): n, accuracy, macro-F1 over every label either
    side used, and Cohen's kappa (NaN when both sides always give one and the same label)."""
    n = len(pairs)
    if not n:
        return {"n": 0, "accuracy": math.nan, "macro_f1": math.nan, "kappa": math.nan}
    labels = sorted({a for a, _ in pairs} | {b for _, b in pairs})
    accuracy = sum(a == b for a, b in pairs) / n
    f1s = []
    for label in labels:
        tp = sum(a == label and b == label for a, b in pairs)
        wrong = sum((a == label) != (b == label) for a, b in pairs)
        f1s.append(2 * tp / (2 * tp + wrong))
    expected = sum(
        sum(a == label for a, _ in pairs) * sum(b == label for _, b in pairs) for label in labels
    ) / (n * n)
    kappa = (accuracy - expected) / (1 - expected) if expected < 1 else math.nan
    return {"n": n, "accuracy": accuracy, "macro_f1": sum(f1s) / len(f1s), "kappa": kappa}
