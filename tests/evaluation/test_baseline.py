"""The tuned linear baseline beside a model, on the same folds, with an interval."""

import numpy as np
import pandas as pd
import pytest

from he2rna_sklearn.evaluation import compare_genes, compare_to_baseline, cross_validate_genes


def test_compare_to_baseline_table_and_verdict(cohort):
    from sklearn.dummy import DummyRegressor
    from sklearn.pipeline import make_pipeline

    from he2rna_sklearn import BagPooling
    from he2rna_sklearn.evaluation import (
        compare_to_baseline,
        ridge_baseline,
        tuned_linear_baseline,
    )

    bags, Y, groups = cohort
    constant = make_pipeline(BagPooling(), DummyRegressor())
    res = compare_to_baseline(constant, bags, Y, groups, cv=3, n_resamples=200)
    assert list(res.table.columns) == [
        "DummyRegressor",
        "tuned linear baseline",
        "difference",
        "95% CI low",
        "95% CI high",
    ]
    assert res.table.loc["genes significant (Holm)", "tuned linear baseline"] >= 1
    assert res.table.loc["genes significant (Holm)", "DummyRegressor"] == 0
    assert res.table.loc["genes significant (Holm)", "95% CI high"] <= 0
    assert "DummyRegressor does NOT beat the tuned linear baseline" in res.verdict
    # the report names what the baseline chose in each fold
    assert res.baseline_choice and "fold" in res.baseline_choice
    assert res.baseline_choice in res.verdict
    # the same folds for both: the baseline's own result is cross_validate_genes'
    again = cross_validate_genes(tuned_linear_baseline(), bags, Y, groups, cv=3)
    pd.testing.assert_frame_equal(res.baseline.pooled, again.pooled)
    flipped = compare_to_baseline(
        ridge_baseline(), bags, Y, groups, cv=3, baseline=constant, n_resamples=200
    )
    assert flipped.verdict.startswith("RidgeCV beats the DummyRegressor")


def test_compare_genes_needs_an_interval_to_call_a_winner():
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(60, 40))
    good = Y + rng.normal(size=Y.shape)
    groups = np.repeat(np.arange(30), 2)
    # a difference of 1e-9 is noise, and so is a tie: never "better" nor "worse"
    for other in (good + 1e-9, good.copy()):
        res = compare_genes(Y, good, other, groups, n_resamples=200)
        assert res.verdict.startswith("not distinguishable"), res.verdict
        assert res.holm_ci_low <= 0 <= res.holm_ci_high
    better = compare_genes(Y, good, Y + rng.normal(scale=5, size=Y.shape), groups)
    assert better.verdict.startswith("better") and better.holm_ci_low > 0
    worse = compare_genes(Y, Y + rng.normal(scale=5, size=Y.shape), good, groups)
    assert worse.verdict.startswith("worse") and worse.holm_ci_high < 0
    assert better.holm == better.holm_baseline + better.holm_difference


def test_compare_genes_resamples_patients_not_slides():
    rng = np.random.default_rng(1)
    Y = rng.normal(size=(10, 10))
    a, b = Y + rng.normal(size=Y.shape), Y + rng.normal(size=Y.shape)
    # each patient has 4 identical slides: they are one observation, not four
    Y4, a4, b4 = (np.repeat(v, 4, axis=0) for v in (Y, a, b))
    by_slide = compare_genes(Y4, a4, b4, n_resamples=300)
    by_patient = compare_genes(Y4, a4, b4, np.repeat(np.arange(10), 4), n_resamples=300)
    assert by_patient.n_patients == 10 and by_slide.n_patients == 40
    width = lambda r: r.r_ci_high - r.r_ci_low  # noqa: E731
    assert width(by_patient) > 1.5 * width(by_slide)
    with pytest.raises(ValueError, match="at least 4 patients"):
        compare_genes(Y4, a4, b4, np.repeat([0, 1], 20))


def test_compare_genes_errors():
    Y = np.zeros((10, 3))
    with pytest.raises(ValueError, match="one shape"):
        compare_genes(Y, Y[:, :2], Y)
    with pytest.raises(ValueError, match="finite"):
        compare_genes(Y, np.full_like(Y, np.nan), Y)


def test_compare_to_baseline_checks_folds_and_method_before_fitting():
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.model_selection import GroupShuffleSplit

    class NeverFit(RegressorMixin, BaseEstimator):
        def fit(self, X, y):
            raise AssertionError("fitted before the arguments were checked")

    rng = np.random.default_rng(0)
    bags = [rng.normal(size=(5, 3)).astype(np.float32) for _ in range(12)]
    Y, groups = rng.normal(size=(12, 2)), np.arange(12)
    shuffle = GroupShuffleSplit(n_splits=2, test_size=0.25, random_state=0)
    with pytest.raises(ValueError, match="every slide in exactly one test fold"):
        compare_to_baseline(NeverFit(), bags, Y, groups, cv=shuffle)
    with pytest.raises(ValueError, match="compares Pearson figures"):
        compare_to_baseline(NeverFit(), bags, Y, groups, method="spearman")
