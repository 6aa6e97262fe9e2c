"""Plots of per-gene results (stage 5 of the data flow: outputs)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_gene_correlations", "plot_learning_curve", "plot_predicted_vs_observed"]


def plot_gene_correlations(table, *, alpha=0.05, correction="holm", ax=None, bins=30):
    """Histogram of per-gene r, split into genes predicted significantly or not.

    Parameters
    ----------
    table : DataFrame
        From :func:`~he2rna_sklearn.metrics.gene_correlations` (or the ``pooled`` table of
        :func:`~he2rna_sklearn.evaluation.cross_validate_genes`).
    alpha : float, default=0.05
    correction : {"holm", "bh"}, default="holm"
    ax : matplotlib Axes, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    import matplotlib.pyplot as plt

    column = {"holm": "p_holm", "bh": "p_bh"}[correction]
    r = table["r"].to_numpy()
    good = (table[column] < alpha).to_numpy()
    defined = ~np.isnan(r)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    edges = np.histogram_bin_edges(r[defined], bins=bins) if defined.any() else bins
    ax.hist(r[defined & ~good], bins=edges, color="0.7", label="not significant")
    ax.hist(
        r[defined & good],
        bins=edges,
        color="tab:red",
        label=f"well predicted ({int(good.sum())}, {correction}, alpha={alpha})",
    )
    if good.any():
        threshold = float(np.min(r[good]))
        ax.axvline(threshold, color="k", ls="--", lw=1)
        ax.annotate(
            f"r >= {threshold:.2f}",
            (threshold, ax.get_ylim()[1] * 0.9),
            xytext=(4, 0),
            textcoords="offset points",
        )
    ax.set_xlabel("Pearson r (predicted vs measured)")
    ax.set_ylabel("genes")
    ax.legend(frameon=False)
    return ax


def plot_predicted_vs_observed(y_true, y_pred, *, genes=None, n_best=6, ncols=3, table=None):
    """Scatter plots of predicted against measured expression for the best genes.

    Parameters
    ----------
    y_true, y_pred : DataFrame or array-like of shape (n_samples, n_genes)
    genes : sequence of str, optional
        Genes to show; default the ``n_best`` genes with the highest r.
    n_best : int, default=6
    ncols : int, default=3
    table : DataFrame, optional
        A :func:`~he2rna_sklearn.metrics.gene_correlations` table, to avoid recomputing.

    Returns
    -------
    fig : matplotlib Figure
    """
    import matplotlib.pyplot as plt
    import pandas as pd

    from .metrics import gene_correlations

    if not hasattr(y_true, "columns"):
        y_true = pd.DataFrame(np.asarray(y_true))
        y_true.columns = [f"gene_{j}" for j in range(y_true.shape[1])]
    y_pred = pd.DataFrame(np.asarray(y_pred), columns=y_true.columns)
    if table is None:
        table = gene_correlations(y_true, y_pred)
    if genes is None:
        genes = table["r"].dropna().sort_values(ascending=False).index[:n_best].tolist()
    nrows = int(np.ceil(len(genes) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    for ax, gene in zip(axes.ravel(), genes):
        x, y = y_true[gene].to_numpy(), y_pred[gene].to_numpy()
        ax.scatter(x, y, s=12, alpha=0.7)
        lo, hi = np.nanmin([x.min(), y.min()]), np.nanmax([x.max(), y.max()])
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, ls=":")
        ax.set_title(f"{gene}  r = {table.loc[gene, 'r']:.2f}")
        ax.set_xlabel("measured")
        ax.set_ylabel("predicted")
    for ax in axes.ravel()[len(genes) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def plot_learning_curve(model, *, baseline=None, ax=None):
    """Training loss and validation score per epoch of a fitted HE2RNA estimator.

    The loss (left axis) and the early-stopping score (right axis) come from the model's
    ``history_``; a dotted line marks the epoch whose weights were kept.

    Parameters
    ----------
    model : HE2RNARegressor or HE2RNAClassifier
        Fitted, with ``validation_fraction`` set for a validation curve.
    baseline : float, optional
        The same validation score for a baseline (e.g. a ridge on mean-pooled features on
        the same validation slides), drawn as a horizontal line.
    ax : matplotlib Axes, optional

    Returns
    -------
    ax : matplotlib Axes
        The loss axes; the score axes is ``ax.right_ax``.

    Examples
    --------
    >>> from he2rna_sklearn.plotting import plot_learning_curve
    >>> ax = plot_learning_curve(fitted_regressor)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    history = getattr(model, "history_", None)
    if history is None:
        raise ValueError(
            f"{type(model).__name__} is not fitted (no history_); fit it before plotting."
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    epochs = history["epoch"].to_numpy()
    ax.plot(epochs, history["train_loss"], color="tab:blue", label="training loss")
    if "valid_loss" in history and history["valid_loss"].notna().any():
        ax.plot(epochs, history["valid_loss"], color="tab:blue", ls="--", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    score = next(
        (c for c in history.columns if c.startswith("valid_r")),
        None,
    )
    right = ax.twinx()
    ax.right_ax = right
    if score is not None:
        right.plot(epochs, history[score], color="tab:red", label=f"validation {score[6:]}")
        right.set_ylabel(f"validation score ({score})")
    if baseline is not None:
        right.axhline(baseline, color="tab:red", ls=":", lw=1.2, label="baseline")
    kept = history.loc[history["kept"], "epoch"]
    if len(kept):
        ax.axvline(int(kept.iloc[0]), color="0.4", ls=":", lw=1)
        ax.annotate(
            f"kept: epoch {int(kept.iloc[0])}",
            (int(kept.iloc[0]), 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
        )
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, frameon=False, fontsize=8, loc="center right")
    return ax
