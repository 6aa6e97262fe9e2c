"""cross_validate_genes: the paper's protocol under patient-grouped CV."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold

from he2rna_sklearn import HE2RNARegressor
from he2rna_sklearn.evaluation import cross_validate_genes
from he2rna_sklearn.metrics import gene_correlations


def test_protocol_tables(cohort):
    bags, Y, groups = cohort
    model = HE2RNARegressor(
        max_epochs=60,
        lr=3e-3,
        validation_fraction=None,
        random_state=0,
    )
    res = cross_validate_genes(model, bags, Y, groups, cv=3)
    assert set(res.per_fold.columns) == {"gene", "fold", "r", "p", "n"}
    assert len(res.per_fold) == 2 * 3 and res.per_fold["n"].sum() == 2 * 60
    assert list(res.pooled.index) == ["MARKER", "NOISE"]
    assert res.predictions.shape == Y.shape and not res.predictions.isna().any().any()
    # pooled statistics are those of the out-of-fold predictions
    again = gene_correlations(Y, res.predictions)
    np.testing.assert_allclose(res.pooled["r"], again["r"])
    assert res.pooled.loc["MARKER", "r"] > 0.8
    assert res.summary["well_predicted_holm"] >= 1 and res.summary["n_folds"] == 3
    assert res.pooled.loc["MARKER", "p_holm"] < 0.05


def test_parallel_folds_give_the_same_result(cohort):
    bags, Y, groups = cohort
    model = HE2RNARegressor(max_epochs=3, validation_fraction=None, random_state=0)
    a = cross_validate_genes(model, bags, Y, groups, cv=3)
    b = cross_validate_genes(model, bags, Y, groups, cv=3, n_jobs=2)
    pd.testing.assert_frame_equal(a.per_fold, b.per_fold)


class _ReportsParentWatch(BaseEstimator, RegressorMixin):
    """Predicts 1 where its process watches its parent (a joblib worker), else 0."""

    def fit(self, X, y, groups=None):
        self.n_outputs_ = np.asarray(y).reshape(len(y), -1).shape[1]
        return self

    def predict(self, X):
        import threading

        from he2rna_sklearn._parallel import WATCH_THREAD_NAME

        watched = any(t.name == WATCH_THREAD_NAME for t in threading.enumerate())
        return np.full((len(X), self.n_outputs_), float(watched))


@pytest.mark.filterwarnings("ignore:.*constant")
def test_fold_workers_exit_with_their_caller(cohort):
    # Workers of n_jobs=2 watch the process that started them (and exit when it dies, so
    # a killed 'he2rna evaluate --jobs 2' does not leave folds training); the caller's own
    # process, with n_jobs=1, starts no watch.
    bags, Y, groups = cohort
    parallel = cross_validate_genes(_ReportsParentWatch(), bags, Y, groups, cv=3, n_jobs=2)
    alone = cross_validate_genes(_ReportsParentWatch(), bags, Y, groups, cv=3)
    assert (parallel.predictions.to_numpy() == 1).all()
    assert (alone.predictions.to_numpy() == 0).all()


def test_refuses_splits_that_mix_patients(cohort):
    bags, Y, groups = cohort
    with pytest.raises(ValueError, match="both train and test"):
        cross_validate_genes(
            HE2RNARegressor(), bags, Y, groups, cv=KFold(3, shuffle=True, random_state=0)
        )


def test_int_cv_means_group_k_fold(cohort, monkeypatch):
    from he2rna_sklearn.evaluation import _genes

    seen = []
    real = _genes._fit_predict

    def spy(estimator, X, Y, groups, train, test, fit_groups, **kwargs):
        seen.append((set(groups[train]), set(groups[test])))
        return real(estimator, X, Y, groups, train, test, fit_groups, **kwargs)

    monkeypatch.setattr(_genes, "_fit_predict", spy)
    bags, Y, groups = cohort
    model = HE2RNARegressor(max_epochs=1, validation_fraction=None)
    cross_validate_genes(model, bags, Y, groups, cv=4)
    assert len(seen) == 4 and all(not (a & b) for a, b in seen)
