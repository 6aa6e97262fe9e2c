import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold

from he2rna_sklearn import HE2RNARegressor
from he2rna_sklearn.evaluation import cross_validate_genes
from he2rna_sklearn.metrics import gene_correlations

from .conftest import planted_fraction


@pytest.fixture(scope="module")
def cohort():
    bags, frac = planted_fraction(60, seed=3)
    rng = np.random.default_rng(0)
    Y = pd.DataFrame(
        {"MARKER": 2 + 3 * frac + rng.normal(0, 0.05, 60), "NOISE": rng.normal(size=60)}
    )
    groups = np.repeat(np.arange(30), 2)
    return bags, Y, groups


def test_protocol_tables(cohort):
    bags, Y, groups = cohort
    model = HE2RNARegressor(
        hidden_layer_sizes=(16,),
        ks=(1000,),
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
    model = HE2RNARegressor(
        hidden_layer_sizes=(8,), max_epochs=3, validation_fraction=None, random_state=0
    )
    a = cross_validate_genes(model, bags, Y, groups, cv=3)
    b = cross_validate_genes(model, bags, Y, groups, cv=3, n_jobs=2)
    pd.testing.assert_frame_equal(a.per_fold, b.per_fold)


def test_refuses_splits_that_mix_patients(cohort):
    bags, Y, groups = cohort
    with pytest.raises(ValueError, match="both train and test"):
        cross_validate_genes(
            HE2RNARegressor(), bags, Y, groups, cv=KFold(3, shuffle=True, random_state=0)
        )


def test_int_cv_means_group_k_fold(cohort, monkeypatch):
    from he2rna_sklearn import evaluation

    seen = []
    real = evaluation._fit_predict

    def spy(estimator, X, Y, groups, train, test, fit_groups):
        seen.append((set(groups[train]), set(groups[test])))
        return real(estimator, X, Y, groups, train, test, fit_groups)

    monkeypatch.setattr(evaluation, "_fit_predict", spy)
    bags, Y, groups = cohort
    model = HE2RNARegressor(hidden_layer_sizes=(4,), max_epochs=1, validation_fraction=None)
    cross_validate_genes(model, bags, Y, groups, cv=4)
    assert len(seen) == 4 and all(not (a & b) for a, b in seen)


def test_aggregate_by_patient():
    from he2rna_sklearn.evaluation import aggregate_by_patient

    s = aggregate_by_patient([0.2, 0.4, 0.9, 0.1], ["B", "B", "A", "C"])
    assert list(s.index) == ["B", "A", "C"] and s["B"] == pytest.approx(0.3)
    m = aggregate_by_patient(np.array([[0.2, 0.8], [0.6, 0.4]]), ["P", "P"], how="max")
    assert m.loc["P"].tolist() == [0.6, 0.8]
    with pytest.raises(ValueError, match="how"):
        aggregate_by_patient([0.1], ["P"], how="vote")


class _GroupSpy(HE2RNARegressor):
    seen = []

    def fit(self, X, y, groups=None, projects=None):
        type(self).seen.append(None if groups is None else set(groups))
        return super().fit(X, y, groups=groups, projects=projects)


@pytest.mark.parametrize("routing", [False, True])
def test_groups_reach_the_regressor_in_a_pipeline(cohort, routing):
    # Issue 13: under metadata routing, a hand-built "<step>__groups" raised TypeError.
    from sklearn import config_context
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    bags, Y, groups = cohort
    _GroupSpy.seen = []
    spy = _GroupSpy(hidden_layer_sizes=(4,), max_epochs=1, validation_fraction=0.2)
    with config_context(enable_metadata_routing=routing):
        cross_validate_genes(make_pipeline(FunctionTransformer(), spy), bags, Y, groups, cv=2)
    assert len(_GroupSpy.seen) == 2 and all(s and len(s) == 15 for s in _GroupSpy.seen)


@pytest.mark.parametrize("routing", [False, True])
def test_steps_without_groups_get_none(cohort, routing):
    from sklearn import config_context
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from he2rna_sklearn import BagPooling

    bags, Y, groups = cohort
    baseline = make_pipeline(BagPooling(), StandardScaler(), RidgeCV())
    with config_context(enable_metadata_routing=routing):
        res = cross_validate_genes(baseline, bags, Y, groups, cv=3)
    assert res.pooled.loc["MARKER", "r"] > 0.8
