"""The ridge baseline beside a model, on the same folds."""

import pandas as pd

from he2rna_sklearn.evaluation import cross_validate_genes


def test_compare_to_baseline_table_and_verdict(cohort):
    from sklearn.dummy import DummyRegressor
    from sklearn.pipeline import make_pipeline

    from he2rna_sklearn import BagPooling
    from he2rna_sklearn.evaluation import compare_to_baseline, ridge_baseline

    bags, Y, groups = cohort
    constant = make_pipeline(BagPooling(), DummyRegressor())
    res = compare_to_baseline(constant, bags, Y, groups, cv=3)
    assert list(res.table.columns) == ["DummyRegressor", "ridge baseline", "difference"]
    assert res.table.loc["genes significant (Holm)", "ridge baseline"] >= 1
    assert res.table.loc["genes significant (Holm)", "DummyRegressor"] == 0
    assert "DummyRegressor does NOT beat the ridge baseline" in res.verdict
    # the same folds for both: the baseline's own result is cross_validate_genes'
    again = cross_validate_genes(ridge_baseline(), bags, Y, groups, cv=3)
    pd.testing.assert_frame_equal(res.baseline.pooled, again.pooled)
    flipped = compare_to_baseline(ridge_baseline(), bags, Y, groups, cv=3, baseline=constant)
    assert flipped.verdict.startswith("RidgeCV beats the DummyRegressor")
