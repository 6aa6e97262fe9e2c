"""groups reach the steps that take them, with and without metadata routing."""

import numpy as np
import pytest

from he2rna_sklearn import HE2RNARegressor
from he2rna_sklearn.evaluation import cross_validate_genes


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
    spy = _GroupSpy(max_epochs=1, validation_fraction=0.2)
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


def test_fit_params_for_reaches_the_regressor(monkeypatch):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from he2rna_sklearn import Bag, HE2RNARegressor, SuperTiles
    from he2rna_sklearn.evaluation import fit_params_for

    seen = {}

    def fit(self, X, y, groups=None):
        seen["groups"] = groups
        return self

    monkeypatch.setattr(HE2RNARegressor, "fit", fit)
    bags = [Bag(np.ones((4, 3)), coords=np.arange(8).reshape(4, 2)) for _ in range(2)]
    model = make_pipeline(SuperTiles(n_clusters=2, random_state=0), HE2RNARegressor())
    model.fit(bags, [[1.0], [2.0]], **fit_params_for(model, groups=["p1", "p2"]))
    assert seen["groups"] == ["p1", "p2"]
    scaler = make_pipeline(StandardScaler())
    scaler.fit(np.eye(3), None, **fit_params_for(scaler, groups=["a", "b", "c"]))
    assert scaler[-1].n_features_in_ == 3  # a model that takes no groups gets none
