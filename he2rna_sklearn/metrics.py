"""Per-gene evaluation metrics (stage 5 of the data flow: outputs)."""

from __future__ import annotations

import numpy as np

__all__ = ["mean_gene_correlation", "pearson_per_gene"]


def _as_2d(a, name):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (n_samples, n_genes), got shape {a.shape}.")
    return a


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
    a = _as_2d(y_true, "y_true")
    b = _as_2d(y_pred, "y_pred")
    if a.shape != b.shape:
        raise ValueError(f"y_true has shape {a.shape} but y_pred has shape {b.shape}.")
    if a.shape[0] < 2:
        raise ValueError("A correlation needs at least 2 samples.")
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    num = (a * b).sum(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    scale = np.maximum(np.abs(a).max(axis=0), 1e-300) * np.maximum(np.abs(b).max(axis=0), 1e-300)
    defined = den > 1e-12 * scale * a.shape[0]
    r = np.full(a.shape[1], np.nan)
    r[defined] = np.clip(num[defined] / den[defined], -1.0, 1.0)
    return r


def mean_gene_correlation(y_true, y_pred):
    """Mean over genes of Pearson r, counting an undefined (constant) gene as r = 0.

    This is the score of :class:`~he2rna_sklearn.HE2RNARegressor` and its early-stopping
    criterion. Counting NaN as 0 keeps a model that predicts a constant from scoring well
    by dropping the genes it gave up on.
    """
    r = pearson_per_gene(y_true, y_pred)
    return float(np.nan_to_num(r, nan=0.0).mean())
