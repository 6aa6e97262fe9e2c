import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from he2rna_sklearn.metrics import gene_correlations
from he2rna_sklearn.plotting import (
    plot_gene_correlations,
    plot_predicted_vs_observed,
)


def _data():
    rng = np.random.default_rng(0)
    y = pd.DataFrame(rng.normal(size=(40, 12)), columns=[f"G{j}" for j in range(12)])
    noise = np.linspace(0.1, 10, 12)
    return y, y + rng.normal(size=(40, 12)) * noise


def test_correlation_histogram_marks_significant_genes():
    y, p = _data()
    table = gene_correlations(y, p)
    ax = plot_gene_correlations(table)
    n_good = int((table["p_holm"] < 0.05).sum())
    assert 0 < n_good < 12
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"well predicted ({n_good}" in label for label in labels)
    assert ax.lines and ax.lines[0].get_xdata()[0] == table.loc[table["p_holm"] < 0.05, "r"].min()
    plt.close("all")


def test_predicted_vs_observed_shows_best_genes():
    y, p = _data()
    fig = plot_predicted_vs_observed(y, p, n_best=4, ncols=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 4 and titles[0].startswith("G0 ")
    plt.close(fig)


def test_learning_curve_marks_kept_epoch_and_baseline():
    import pytest

    from he2rna_sklearn.plotting import plot_learning_curve

    class Fitted:
        history_ = pd.DataFrame(
            {
                "epoch": [0, 1, 2, 3],
                "train_loss": [np.nan, 1.0, 0.8, 0.7],
                "valid_loss": [np.nan, 0.9, 0.85, 0.9],
                "valid_r": [0.30, 0.25, 0.33, 0.31],
                "kept": [False, False, True, False],
            }
        )

    ax = plot_learning_curve(Fitted(), baseline=0.32)
    right = ax.right_ax
    np.testing.assert_array_equal(right.lines[0].get_ydata(), Fitted.history_["valid_r"])
    assert right.lines[1].get_ydata()[0] == 0.32  # the baseline line
    assert any(t.get_text() == "kept: epoch 2" for t in ax.texts)
    plt.close("all")
    with pytest.raises(ValueError, match="not fitted"):
        plot_learning_curve(object())
