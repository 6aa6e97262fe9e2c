"""Two sets of out-of-fold expression predictions on the same slides, compared with an
interval: is one model better than the other, or is the difference noise?"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils import Bunch, check_random_state

__all__ = ["compare_genes"]


def _column_r(a, b):
    """Pearson r of every column of ``b`` against ``a`` (NaN where undefined)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=0) / den
    return np.where(den > 1e-12, np.clip(r, -1.0, 1.0), np.nan)


def _holm_count(r, n, alpha):
    """Genes whose one-sided r > 0 test survives Holm's correction at ``alpha``."""
    r = np.nan_to_num(r, nan=0.0)
    with np.errstate(divide="ignore"):
        t = r * np.sqrt((n - 2) / np.maximum(1.0 - r * r, 1e-300))
    p = np.sort(stats.t.sf(t, n - 2))
    thresholds = alpha / (len(p) - np.arange(len(p)))
    failed = np.flatnonzero(p > thresholds)
    return int(failed[0]) if len(failed) else len(p)


def compare_genes(
    y_true,
    y_pred,
    baseline_pred,
    groups=None,
    *,
    alpha=0.05,
    figure="holm",
    n_resamples=1000,
    confidence_level=0.95,
    random_state=0,
):
    """Compare two models' out-of-fold predictions of the same genes on the same slides.

    The figures are the paper's: genes whose correlation is significantly positive after
    Holm's correction, and the mean over genes of Pearson's r, on all slides. Their
    differences (model minus baseline) get a paired bootstrap interval: patients are drawn
    with replacement, with all their slides, and both models are scored on every draw. The
    verdict says "better" or "worse" only when the interval of the difference excludes 0
    (of the Holm genes, or of the mean r with ``figure="mean_r"``, better suited to a
    handful of slides), and "not distinguishable" otherwise, so that noise is never read
    as a win.

    Parameters
    ----------
    y_true, y_pred, baseline_pred : array-like of shape (n_slides, n_genes)
        Measured expression and the two models' out-of-fold predictions.
    groups : array-like of shape (n_slides,), optional
        Patient ids (default: every slide its own patient).
    alpha : float, default=0.05
        Level of the Holm-corrected tests.
    figure : {"holm", "mean_r"}, default="holm"
        The difference the verdict reads.
    n_resamples : int, default=1000
    confidence_level : float, default=0.95
    random_state : int, RandomState instance or None, default=0

    Returns
    -------
    result : sklearn.utils.Bunch
        ``holm``, ``holm_baseline``, ``holm_difference``, ``holm_ci_low``,
        ``holm_ci_high``; ``mean_r``, ``mean_r_baseline``, ``r_difference``, ``r_ci_low``,
        ``r_ci_high``; ``n_patients``; ``verdict`` ("better than the baseline", "worse
        than the baseline" or "not distinguishable from the baseline", with the
        interval).

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn.evaluation import compare_genes
    >>> rng = np.random.default_rng(0)
    >>> Y = rng.normal(size=(80, 50))
    >>> good, poor = Y + rng.normal(size=Y.shape), Y + rng.normal(scale=4, size=Y.shape)
    >>> compare_genes(Y, good, poor).verdict.split(" (")[0]
    'better than the baseline'
    >>> compare_genes(Y, good, good + 1e-9).verdict.split(" (")[0]
    'not distinguishable from the baseline'
    """
    if figure not in ("holm", "mean_r"):
        raise ValueError(f"figure must be 'holm' or 'mean_r', got {figure!r}.")
    arrays = [np.asarray(v, dtype=np.float64) for v in (y_true, y_pred, baseline_pred)]
    arrays = [v[:, None] if v.ndim == 1 else v for v in arrays]
    Y, a, b = arrays
    if not (Y.shape == a.shape == b.shape) or Y.ndim != 2:
        raise ValueError(
            f"y_true, y_pred and baseline_pred must have one shape (n_slides, n_genes); got "
            f"{Y.shape}, {a.shape} and {b.shape}."
        )
    if not (np.isfinite(Y).all() and np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("y_true, y_pred and baseline_pred must be finite (no NaN).")
    n = len(Y)
    if groups is None:
        members = [np.array([i]) for i in range(n)]
    else:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise ValueError(f"groups must have one entry per slide ({n}), got {groups.shape}.")
        members = [np.flatnonzero(groups == g) for g in pd.unique(groups)]
    if len(members) < 4:
        raise ValueError(f"compare_genes needs at least 4 patients, got {len(members)}.")

    def figures(index):
        r_a, r_b = _column_r(Y[index], a[index]), _column_r(Y[index], b[index])
        m = len(index)
        return (
            _holm_count(r_a, m, alpha),
            _holm_count(r_b, m, alpha),
            float(np.nanmean(r_a)) if np.isfinite(r_a).any() else 0.0,
            float(np.nanmean(r_b)) if np.isfinite(r_b).any() else 0.0,
        )

    holm, holm_base, r, r_base = figures(np.arange(n))
    rng = check_random_state(random_state)
    d_holm, d_r = np.empty(n_resamples), np.empty(n_resamples)
    for i in range(int(n_resamples)):
        draw = rng.randint(len(members), size=len(members))
        h_a, h_b, m_a, m_b = figures(np.concatenate([members[u] for u in draw]))
        d_holm[i], d_r[i] = h_a - h_b, m_a - m_b
    tail = 100 * (1 - confidence_level) / 2
    holm_lo, holm_hi = np.percentile(d_holm, [tail, 100 - tail])
    r_lo, r_hi = np.percentile(d_r, [tail, 100 - tail])
    level = f"{100 * confidence_level:g}%"
    if figure == "holm":
        low, high = holm_lo, holm_hi
        interval = f"{level} interval of the difference {low:+.0f} to {high:+.0f} genes"
    else:
        low, high = r_lo, r_hi
        interval = f"{level} interval of the mean r difference {low:+.3f} to {high:+.3f}"
    if low > 0:
        verdict = f"better than the baseline ({interval}, above 0)"
    elif high < 0:
        verdict = f"worse than the baseline ({interval}, below 0)"
    else:
        verdict = f"not distinguishable from the baseline ({interval} contains 0)"
    return Bunch(
        holm=holm,
        holm_baseline=holm_base,
        holm_difference=holm - holm_base,
        holm_ci_low=float(holm_lo),
        holm_ci_high=float(holm_hi),
        mean_r=r,
        mean_r_baseline=r_base,
        r_difference=r - r_base,
        r_ci_low=float(r_lo),
        r_ci_high=float(r_hi),
        n_patients=len(members),
        verdict=verdict,
    )
