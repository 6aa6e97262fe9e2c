"""Per-gene evaluation metrics with statistics (stage 5 of the data flow: outputs).

HE2RNA asks, for every gene, whether its expression is predicted: the correlation between
predicted and measured expression across held-out samples, tested one-sided (r > 0), with
a correction for testing thousands of genes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import make_scorer

__all__ = [
    "adjust_pvalues",
    "count_well_predicted",
    "gene_correlations",
    "mean_gene_correlation",
    "mean_gene_correlation_scorer",
    "pearson_per_gene",
    "spearman_gene_correlation_scorer",
]


def _as_2d(a, name):
    if hasattr(a, "to_numpy"):
        a = a.to_numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (n_samples, n_genes), got shape {a.shape}.")
    return a


def _check_pair(y_true, y_pred):
    a = _as_2d(y_true, "y_true")
    b = _as_2d(y_pred, "y_pred")
    if a.shape != b.shape:
        raise ValueError(f"y_true has shape {a.shape} but y_pred has shape {b.shape}.")
    if a.shape[0] < 2:
        raise ValueError("A correlation needs at least 2 samples.")
    return a, b


def _column_r(a, b):
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    num = (a * b).sum(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    scale = np.maximum(np.abs(a).max(axis=0), 1e-300) * np.maximum(np.abs(b).max(axis=0), 1e-300)
    defined = den > 1e-12 * scale * a.shape[0]
    r = np.full(a.shape[1], np.nan)
    r[defined] = np.clip(num[defined] / den[defined], -1.0, 1.0)
    return r


def pearson_per_gene(y_true, y_pred):
    """Pearson r of every column (gene) of ``y_pred`` against ``y_true``.

    A gene that is constant in either array has no defined correlation: its r is NaN.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples, n_genes)

    Returns
    -------
    r : ndarray of shape (n_genes,)

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    >>> pearson_per_gene(y, 2 * y)
    array([ 1., nan])
    """
    return _column_r(*_check_pair(y_true, y_pred))


def mean_gene_correlation(y_true, y_pred):
    """Mean over genes of Pearson r, counting an undefined (constant) gene as r = 0.

    This is the score of :class:`~he2rna_sklearn.HE2RNARegressor` and its early-stopping
    criterion. Counting NaN as 0 keeps a model that predicts a constant from scoring well
    by dropping the genes it gave up on.
    """
    r = pearson_per_gene(y_true, y_pred)
    return float(np.nan_to_num(r, nan=0.0).mean())


def _mean_spearman(y_true, y_pred):
    a, b = _check_pair(y_true, y_pred)
    r = _column_r(stats.rankdata(a, axis=0), stats.rankdata(b, axis=0))
    return float(np.nan_to_num(r, nan=0.0).mean())


#: ``scoring=`` for GridSearchCV and cross_validate: mean per-gene Pearson r.
mean_gene_correlation_scorer = make_scorer(mean_gene_correlation)
#: ``scoring=`` for GridSearchCV and cross_validate: mean per-gene Spearman rho.
spearman_gene_correlation_scorer = make_scorer(_mean_spearman)


def adjust_pvalues(p, method="holm"):
    """Adjust p-values for multiple testing; NaN entries are ignored and stay NaN.

    Parameters
    ----------
    p : array-like of shape (n,)
    method : {"holm", "bh"}
        Holm-Bonferroni (controls the family-wise error rate) or Benjamini-Hochberg
        (controls the false discovery rate).

    Returns
    -------
    adjusted : ndarray of shape (n,)
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="mergesort")]
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    elif method in ("bh", "fdr_bh"):
        adj = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
        adj = np.minimum(adj, 1.0)
    else:
        raise ValueError(f"method must be 'holm' or 'bh', got {method!r}.")
    out[order] = adj
    return out


def gene_correlations(y_true, y_pred, *, method="pearson", genes=None):
    """Per-gene correlation with one-sided p-values and multiple-testing corrections.

    Parameters
    ----------
    y_true, y_pred : array-like or DataFrame of shape (n_samples, n_genes)
    method : {"pearson", "spearman"}, default="pearson"
    genes : sequence of str, optional
        Gene names; default the columns of ``y_true`` if a DataFrame, else ``gene_0``...

    Returns
    -------
    table : DataFrame indexed by gene
        ``r``; ``p``, one-sided for r > 0 (is the expression predicted?); ``p_holm``
        (Holm-Bonferroni) and ``p_bh`` (Benjamini-Hochberg) over the genes with a defined
        r; and ``n``, the number of samples.

    Warns
    -----
    UserWarning
        For genes that are constant in ``y_true`` or ``y_pred``: their r and p are NaN.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=(50, 3))
    >>> table = gene_correlations(y, y + rng.normal(size=(50, 3)), genes=["A", "B", "C"])
    >>> list(table.columns)
    ['r', 'p', 'p_holm', 'p_bh', 'n']
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}.")
    if genes is None and hasattr(y_true, "columns"):
        genes = [str(c) for c in y_true.columns]
    a, b = _check_pair(y_true, y_pred)
    n, g = a.shape
    if genes is None:
        genes = [f"gene_{j}" for j in range(g)]
    if len(genes) != g:
        raise ValueError(f"Got {len(genes)} gene names for {g} genes.")
    if method == "spearman":
        a, b = stats.rankdata(a, axis=0), stats.rankdata(b, axis=0)
    r = _column_r(a, b)
    undefined = np.isnan(r)
    if undefined.any():
        names = [genes[j] for j in np.flatnonzero(undefined)]
        warnings.warn(
            f"{len(names)} genes are constant in y_true or y_pred, so their correlation is "
            f"undefined (NaN): {names[:10]}",
            UserWarning,
            stacklevel=2,
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        t = r * np.sqrt((n - 2) / np.maximum(1.0 - r**2, 1e-300))
    p = np.where(undefined, np.nan, stats.t.sf(t, df=n - 2) if n > 2 else np.nan)
    return pd.DataFrame(
        {
            "r": r,
            "p": p,
            "p_holm": adjust_pvalues(p, "holm"),
            "p_bh": adjust_pvalues(p, "bh"),
            "n": n,
        },
        index=pd.Index(genes, name="gene"),
    )


def count_well_predicted(y_true, y_pred, *, alpha=0.05, correction="holm", method="pearson"):
    """Number of genes whose correlation is significantly positive after correction.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples, n_genes)
    alpha : float, default=0.05
    correction : {"holm", "bh"}, default="holm"
    method : {"pearson", "spearman"}, default="pearson"
    """
    column = {"holm": "p_holm", "bh": "p_bh"}.get(correction)
    if column is None:
        raise ValueError(f"correction must be 'holm' or 'bh', got {correction!r}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table = gene_correlations(y_true, y_pred, method=method)
    return int((table[column] < alpha).sum())
