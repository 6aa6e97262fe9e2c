import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from he2rna_sklearn import Bag, BagPooling
from he2rna_sklearn.evaluation import cross_validate_genes

from ..conftest import random_bags


def test_statistics_match_numpy():
    bags = random_bags(5, n_features=3, seed=0)
    out = BagPooling(stats=["mean", "max", "min", "std", 0.25]).fit_transform(bags)
    for row, bag in zip(out, bags):
        expected = np.concatenate(
            [bag.mean(0), bag.max(0), bag.min(0), bag.std(0), np.quantile(bag, 0.25, axis=0)]
        )
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-6)


def test_feature_names_and_pandas_output():
    bags = [Bag(b) for b in random_bags(4, n_features=2, seed=1)]
    pool = BagPooling(stats=("mean", 0.9)).set_output(transform="pandas")
    out = pool.fit_transform(bags)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["mean_f0", "mean_f1", "q0.9_f0", "q0.9_f1"]


@pytest.mark.parametrize(
    "stats, match",
    [("median", "Unknown statistic 'median'"), (1.5, r"\[0, 1\]"), ([], "at least one"),
     (["mean", "mean"], "duplicates")],
)  # fmt: skip
def test_bad_stats(stats, match):
    with pytest.raises(ValueError, match=match):
        BagPooling(stats=stats).fit(random_bags(3))


def test_feature_count_is_checked():
    pool = BagPooling().fit(random_bags(3, n_features=4))
    with pytest.raises(ValueError, match="expected 4 as seen in fit"):
        pool.transform(random_bags(2, n_features=5))


def _linear_cohort(n, seed):
    bags = random_bags(n, n_features=6, min_tiles=10, max_tiles=30, seed=seed)
    y = np.column_stack([[b[:, 0].mean() for b in bags], [b[:, 1].mean() for b in bags]])
    return bags, y


def test_ridge_baseline_in_grid_search_by_patient():
    bags, y = _linear_cohort(40, seed=2)
    groups = np.repeat(np.arange(20), 2)
    pipe = make_pipeline(BagPooling(), StandardScaler(), RidgeCV())
    search = GridSearchCV(
        pipe, {"bagpooling__stats": ["mean", ["mean", "max"]]}, cv=GroupKFold(4)
    ).fit(bags, y, groups=groups)
    assert search.best_params_["bagpooling__stats"] in ("mean", ["mean", "max"])
    assert search.best_estimator_.predict(bags).shape == (40, 2)
    assert search.best_score_ > 0.8  # the targets are linear in the mean features


def test_ridge_baseline_in_cross_validate_genes():
    bags, y = _linear_cohort(30, seed=3)
    pipe = make_pipeline(BagPooling(), StandardScaler(), RidgeCV())
    res = cross_validate_genes(pipe, bags, y, np.arange(30), cv=3)
    assert res.summary["mean_r_pooled"] > 0.8
    assert res.predictions.shape == (30, 2)
