"""Expression targets: their checks, and the early-stopping scores computed on them."""

from __future__ import annotations

import numpy as np

from ..metrics import mean_gene_correlation

__all__ = [
    "check_projects",
    "check_row_order",
    "check_targets",
    "gene_columns",
    "gene_set_score",
    "per_group_mean_r",
    "valid_mean_r",
]


def valid_mean_r(net, X, y):
    """EpochScoring callable: validation mean per-gene Pearson r (NaN counted as 0)."""
    return mean_gene_correlation(y, net.predict(X))


def per_group_mean_r(groups):
    """EpochScoring callable: per group (e.g. project) the mean per-gene r, then their mean.

    Groups with fewer than 3 validation slides have no usable correlation and are skipped.
    """
    groups = np.asarray(groups)
    usable = [g for g in np.unique(groups) if (groups == g).sum() >= 3]

    def score(net, X, y):
        pred = net.predict(X)
        y = np.asarray(y)
        return float(
            np.mean([mean_gene_correlation(y[groups == g], pred[groups == g]) for g in usable])
        )

    return score, usable


def check_row_order(y, bags, name="y"):
    """Refuse a pandas ``y`` whose index holds the bags' slide ids in another order.

    Targets are matched to bags by position. When every bag carries a ``slide_id`` and
    ``y`` (a DataFrame or Series) is indexed by those ids, its rows must come in the bags'
    order, or every slide would be trained on another slide's targets. An index that
    shares no value with the slide ids (a RangeIndex, patient ids...) is not checked, nor
    are arrays and bags without ``slide_id``.

    Raises
    ------
    ValueError
        Naming the first mismatches and how to align ``y``.
    """
    index = getattr(y, "index", None)
    if index is None or not hasattr(y, "iloc") or bags is None:
        return
    ids = [getattr(bag, "slide_id", None) for bag in bags]
    if len(ids) != len(index) or any(i is None for i in ids):
        return
    ids = [str(i) for i in ids]
    rows = [str(r) for r in index]
    if rows == ids or not set(rows) & set(ids):
        return
    wrong = [i for i, (r, s) in enumerate(zip(rows, ids)) if r != s]
    shown = ", ".join(f"row {i} is '{rows[i]}' for slide '{ids[i]}'" for i in wrong[:3])
    more = f" and {len(wrong) - 3} more" if len(wrong) > 3 else ""
    raise ValueError(
        f"{name} is indexed by slide ids in another order than the bags ({shown}{more}): "
        f"rows are matched to bags by position. Align it first: "
        f"{name}.loc[[b.slide_id for b in bags]]."
    )


def check_targets(y, n_bags, name="y", *, bags=None):
    """Validate a target table; returns (Y float32 2-D, column names, was_1d).

    With ``bags``, a pandas ``y`` indexed by their slide ids must list them in their order
    (:func:`check_row_order`).
    """
    names = None
    if hasattr(y, "columns") and hasattr(y, "to_numpy"):  # DataFrame
        names = np.asarray([str(c) for c in y.columns], dtype=object)
        non_numeric = [c for c, t in zip(y.columns, y.dtypes) if not np.issubdtype(t, np.number)]
        if non_numeric:
            raise ValueError(f"{name} has non-numeric columns: {non_numeric[:10]}.")
        values = y.to_numpy(dtype=np.float64)
    elif hasattr(y, "to_numpy") and getattr(y, "ndim", 0) == 1:  # Series
        names = np.asarray([str(y.name) if y.name is not None else "y0"], dtype=object)
        values = y.to_numpy(dtype=np.float64)
    else:
        try:
            values = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric: {exc}") from exc
    was_1d = values.ndim == 1
    if was_1d:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(
            f"{name} must be 1-D or 2-D (n_slides, n_genes), got shape {values.shape}."
        )
    if values.shape[0] != n_bags:
        raise ValueError(
            f"X holds {n_bags} bags but {name} has {values.shape[0]} rows; give one row per bag."
        )
    if values.shape[1] == 0:
        raise ValueError(f"{name} has no columns (genes).")
    check_row_order(y, bags, name)
    if names is None:
        names = np.asarray([f"gene_{j}" for j in range(values.shape[1])], dtype=object)
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))[:10].tolist()
        cols = names[bad.any(axis=0)][:10].tolist()
        raise ValueError(
            f"{name} has NaN or infinite values in rows {rows} and genes {cols}; impute or drop "
            "them before fitting."
        )
    return values.astype(np.float32), names, was_1d


def check_projects(projects, n_bags):
    """The project (cancer type) of each slide as an object array, or None."""
    if projects is None:
        return None
    projects = np.asarray(projects, dtype=object)
    if projects.shape != (n_bags,):
        raise ValueError(
            f"projects must have one entry per bag ({n_bags}), got shape {projects.shape}."
        )
    return projects


def gene_columns(names, genes):
    """The positions in ``names`` (a model's genes) of ``genes``: one name or several."""
    wanted = [genes] if isinstance(genes, str) else list(genes)
    missing = [g for g in wanted if g not in names]
    if missing or not wanted:
        raise ValueError(
            f"Unknown genes {missing or wanted}; the model predicts "
            f"{names[:10]}{'...' if len(names) > 10 else ''}."
        )
    return [names.index(g) for g in wanted]


def gene_set_score(scores):
    """Per row, the mean over columns (genes) of their z-scored ``scores``."""
    std = scores.std(axis=0)
    z = (scores - scores.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return z.mean(axis=1)
