"""groups reach the steps that take them, with and without metadata routing."""

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
