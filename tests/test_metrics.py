import numpy as np
import pytest
from scipy import stats

from he2rna_sklearn.metrics import mean_gene_correlation, pearson_per_gene


def test_matches_scipy_per_column():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 5))
    p = y + rng.normal(scale=[0.1, 0.5, 1, 2, 5], size=(40, 5))
    r = pearson_per_gene(y, p)
    expected = [stats.pearsonr(y[:, j], p[:, j]).statistic for j in range(5)]
    np.testing.assert_allclose(r, expected, rtol=1e-10)


def test_constant_gene_is_nan_and_counts_zero_in_mean():
    y = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]])
    p = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])
    r = pearson_per_gene(y, p)
    assert r[0] == pytest.approx(1.0) and np.isnan(r[1])
    assert mean_gene_correlation(y, p) == pytest.approx(0.5)


def test_shape_errors():
    with pytest.raises(ValueError, match="shape"):
        pearson_per_gene(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="2 samples"):
        pearson_per_gene(np.zeros((1, 2)), np.zeros((1, 2)))
