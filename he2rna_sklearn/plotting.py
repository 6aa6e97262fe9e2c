"""Plots of per-gene results (stage 5 of the data flow: outputs)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_gene_correlations", "plot_predicted_vs_observed"]


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
