import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.model_selection import GridSearchCV, GroupKFold

from he2rna_sklearn.metrics import (
    adjust_pvalues,
    count_well_predicted,
    gene_correlations,
    mean_gene_correlation,
    mean_gene_correlation_scorer,
    pearson_per_gene,
    spearman_gene_correlation_scorer,
)

from .conftest import random_bags


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 30))
    noise = rng.uniform(0.2, 8.0, size=30)
    return y, y + rng.normal(size=(40, 30)) * noise


def test_pearson_matches_scipy(pair):
    y, p = pair
    expected = [stats.pearsonr(y[:, j], p[:, j]).statistic for j in range(y.shape[1])]
    np.testing.assert_allclose(pearson_per_gene(y, p), expected, rtol=1e-10)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_one_sided_p_values_match_scipy(pair, method):
    y, p = pair
    table = gene_correlations(y, p, method=method)
    test = stats.pearsonr if method == "pearson" else stats.spearmanr
    for j in range(y.shape[1]):
        res = test(y[:, j], p[:, j], alternative="greater")
        assert table["r"].iloc[j] == pytest.approx(res.statistic, rel=1e-9)
        assert table["p"].iloc[j] == pytest.approx(res.pvalue, rel=1e-6, abs=1e-300)


def test_corrections_match_statsmodels(pair):
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    y, p = pair
    table = gene_correlations(y, p)
    np.testing.assert_allclose(table["p_holm"], multipletests(table["p"], method="holm")[1])
    np.testing.assert_allclose(table["p_bh"], multipletests(table["p"], method="fdr_bh")[1])


def test_adjust_ignores_nan():
    adj = adjust_pvalues([0.01, np.nan, 0.04], "bh")
    # BH over the 2 defined p-values: 0.01 * 2 / 1 and 0.04 * 2 / 2
    assert np.isnan(adj[1]) and adj[0] == pytest.approx(0.02) and adj[2] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="holm"):
        adjust_pvalues([0.1], "bonferroni-ish")


def test_constant_gene_warns_and_is_nan():
    y = pd.DataFrame({"A": [1.0, 2.0, 3.0, 4.0], "FLAT": [2.0, 2.0, 2.0, 2.0]})
    p = y + np.array([[0.1, 0], [0, 0], [0.2, 0], [0, 0]])
    with pytest.warns(UserWarning, match="FLAT"):
        table = gene_correlations(y, p)
    assert list(table.index) == ["A", "FLAT"]
    assert np.isnan(table.loc["FLAT", "r"]) and np.isnan(table.loc["FLAT", "p_holm"])
    assert table.loc["A", "r"] > 0.9
    assert mean_gene_correlation(y, p) == pytest.approx(table.loc["A", "r"] / 2)


def test_count_well_predicted(pair):
    y, p = pair
    table = gene_correlations(y, p)
    assert count_well_predicted(y, p) == int((table["p_holm"] < 0.05).sum())
    assert count_well_predicted(y, p, correction="bh") >= count_well_predicted(y, p)
    assert 0 < count_well_predicted(y, p) < 30


def test_scorers_in_grid_search():
    from he2rna_sklearn import HE2RNARegressor

    bags = random_bags(18, n_features=4, seed=7)
    y = np.column_stack([[b[:, 0].mean() for b in bags], [b[:, 1].max() for b in bags]])
    search = GridSearchCV(
        HE2RNARegressor(max_epochs=3, validation_fraction=None, random_state=0),
        {"lr": [1e-3]},
        cv=GroupKFold(3),
        scoring={"r": mean_gene_correlation_scorer, "rho": spearman_gene_correlation_scorer},
        refit="r",
    )
    search.fit(bags, y, groups=np.arange(18) // 2)
    assert np.isfinite(search.cv_results_["mean_test_rho"]).all()


def test_shape_errors():
    with pytest.raises(ValueError, match="shape"):
        pearson_per_gene(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="2 samples"):
        pearson_per_gene(np.zeros((1, 2)), np.zeros((1, 2)))
