"""Statistics over seeds: mean, standard deviation, 95% confidence intervals, resolved differences.

A figure from one seed says little about a gap of half a point: on this
codebase's Fashion-MNIST runs the seed-to-seed standard deviation of a linear
probe is a few tenths of a point. Studies therefore report each setting as
mean, sample standard deviation (ddof 1), n and a 95% Student-t interval for
the mean, and call a difference between two settings *resolved* when the 95%
Welch interval of the difference of means excludes 0 (Welch's unequal-variance
t-test at the 5% level, two-sided). With n = 3 per setting the t quantile is
4.30: an interval is about 2.5 standard deviations wide on each side.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

LEVEL = 0.95


def summary(values) -> dict:
    """{"n", "mean", "std", "ci95": half-width of the 95% t interval, "lo", "hi"}; std and ci are nan for n = 1."""
    x = np.asarray(list(values), np.float64)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "std": math.nan, "ci95": math.nan, "lo": math.nan, "hi": math.nan}
    std = float(x.std(ddof=1))
    half = float(_st.t.ppf(0.5 + LEVEL / 2, n - 1) * std / math.sqrt(n))
    return {"n": n, "mean": mean, "std": std, "ci95": half, "lo": mean - half, "hi": mean + half}


def difference(a, b) -> dict:
    """mean(a) - mean(b) with its 95% Welch interval and two-sided p-value; resolved iff the interval excludes 0."""
    a, b = np.asarray(list(a), np.float64), np.asarray(list(b), np.float64)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "ci95": math.nan, "p": math.nan, "resolved": False}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:  # identical runs on both sides: any non-zero gap is exact
        return {"diff": diff, "ci95": 0.0, "p": 0.0 if diff else 1.0, "resolved": diff != 0.0}
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))  # Welch-Satterthwaite
    half = float(_st.t.ppf(0.5 + LEVEL / 2, dof) * se)
    p = float(2 * _st.t.sf(abs(diff) / se, dof))
    return {"diff": diff, "ci95": half, "p": p, "resolved": abs(diff) > half}


def fmt(s: dict, digits: int = 2) -> str:
    """'mean ± std (95% CI lo–hi, n)' or 'value (n = 1)'."""
    if s["n"] < 2:
        return f"{s['mean']:.{digits}f} (n = 1)"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"
