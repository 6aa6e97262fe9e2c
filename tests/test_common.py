"""scikit-learn's data-free estimator checks, run by name on every estimator.

With ``two_d_array=False`` ``check_estimator`` skips almost everything, so the checks that
need no data are run one by one; the bag-based behaviour (refit, pickle, batch leakage,
small bags, clear errors) is tested in each estimator's own test module.
"""

import pytest
from sklearn.utils import estimator_checks as ec

from he2rna_sklearn import (
    BagPooling,
    HE2RNAClassifier,
    HE2RNAEmbedder,
    HE2RNARegressor,
    MeanFeatureEmbedder,
    SlideFeaturizer,
    SuperTiles,
)
from he2rna_sklearn.model import ReducedRankRidge, TunedLinearRegressor

ESTIMATORS = [
    BagPooling(),
    HE2RNARegressor(),
    HE2RNAClassifier(),
    HE2RNAEmbedder(),
    MeanFeatureEmbedder(),
    SuperTiles(),
    SlideFeaturizer(),
]
CHECKS = [
    "check_estimator_cloneable",
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order",
    "check_estimators_unfitted",
    "check_estimator_repr",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("check", CHECKS)
def test_sklearn_check(estimator, check):
    fn = getattr(ec, check, None)
    if fn is None:
        pytest.skip(f"{check} is not in this scikit-learn version")
    if check == "check_estimators_unfitted" and estimator.__sklearn_tags__().requires_fit is False:
        pytest.skip("stateless transformer: works without fit by design")
    fn(type(estimator).__name__, estimator)


def test_tags():
    reg = HE2RNARegressor().__sklearn_tags__()
    assert reg.input_tags.two_d_array is False and reg.target_tags.multi_output
    assert SlideFeaturizer().__sklearn_tags__().requires_fit is False


def test_html_repr():
    html = HE2RNARegressor(hidden_layer_sizes=(8,))._repr_html_()
    assert "HE2RNARegressor" in html and "hidden_layer_sizes" in html


# The linear baselines take 2-D features, so scikit-learn's whole battery applies to them.
@ec.parametrize_with_checks([ReducedRankRidge(), TunedLinearRegressor(cv=2)])
def test_linear_baselines_pass_check_estimator(estimator, check):
    check(estimator)
