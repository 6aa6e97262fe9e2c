import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from he2rna_sklearn import HE2RNAEmbedder, HE2RNARegressor

FAST = dict(
    tile_types=None, hidden_layer_sizes=(8,), max_epochs=3, validation_fraction=None, random_state=0
)


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(0)
    n = 36
    msi = np.array([0, 1] * (n // 2))
    bags = []
    for label in msi:
        x = rng.normal(size=(int(rng.integers(20, 40)), 6)).astype(np.float32)
        x[:5, 0] += 2.5 * label
        bags.append(x)
    slide_ids = [f"S{i:02d}" for i in range(n)]
    expression = pd.DataFrame(
        {"CD3E": [b[:, 0].max() for b in bags], "EPCAM": [b[:, 1].mean() for b in bags]},
        index=slide_ids,
    )
    groups = np.arange(n) // 2  # two slides per patient, same label
    msi = np.repeat(np.arange(n // 2) % 2, 2)
    return bags, msi, expression, groups


class SpyRegressor(HE2RNARegressor):
    """Records the expression rows (slide ids) each fit sees."""

    seen = []

    def fit(self, X, y, groups=None):
        SpyRegressor.seen.append(list(y.index))
        return super().fit(X, y, groups=groups)


def test_frozen_regressor_is_not_refit_in_grid_search(cohort):
    bags, msi, expression, groups = cohort
    SpyRegressor.seen = []
    reg = SpyRegressor(**FAST).fit(bags, expression)
    weights = reg.module_.hidden[0].weight.detach().clone()
    pipe = make_pipeline(FrozenEstimator(reg), StandardScaler(), LogisticRegression())
    search = GridSearchCV(
        pipe, {"logisticregression__C": [0.1, 1.0]}, cv=StratifiedGroupKFold(3), scoring="roc_auc"
    )
    search.fit(bags, msi, groups=groups)
    assert len(SpyRegressor.seen) == 1  # only the fit above: the frozen step never refits
    assert search.best_estimator_[0].estimator is reg
    assert np.array_equal(reg.module_.hidden[0].weight.detach(), weights)
    assert search.predict_proba(bags).shape == (36, 2)


def test_embedder_fits_on_each_folds_expression_only(cohort):
    bags, msi, expression, groups = cohort
    SpyRegressor.seen = []
    pipe = make_pipeline(
        HE2RNAEmbedder(SpyRegressor(**FAST)), StandardScaler(), LogisticRegression()
    )
    cv = StratifiedGroupKFold(3, shuffle=True, random_state=0)
    with config_context(enable_metadata_routing=True):
        result = cross_validate(
            pipe,
            bags,
            msi,
            cv=cv,
            scoring="roc_auc",
            params={"expression": expression, "groups": groups},
            return_indices=True,
        )
    ids = np.asarray(expression.index)
    assert len(SpyRegressor.seen) == 3
    for seen, train, test in zip(
        SpyRegressor.seen, result["indices"]["train"], result["indices"]["test"]
    ):
        assert seen == list(ids[train])  # exactly the training fold's rows, in order
        assert not set(seen) & set(ids[test])  # nothing of the test fold leaks in
    assert np.isfinite(result["test_score"]).all()


def test_embedder_without_routing_and_never_on_labels(cohort):
    bags, msi, expression, _ = cohort
    pipe = make_pipeline(HE2RNAEmbedder(HE2RNARegressor(**FAST)), LogisticRegression())
    with pytest.raises(ValueError, match="never from y"):
        pipe.fit(bags, msi)  # no expression: an error, not a regressor fitted on MSI
    pipe.fit(bags, msi, he2rnaembedder__expression=expression)
    embedder = pipe[0]
    assert list(embedder.regressor_.gene_names_) == ["CD3E", "EPCAM"]
    assert embedder.transform(bags).shape == (36, 8)
    assert list(embedder.get_feature_names_out())[:2] == ["he2rnaregressor0", "he2rnaregressor1"]


def test_embedder_can_output_expression(cohort):
    bags, _, expression, _ = cohort
    emb = HE2RNAEmbedder(HE2RNARegressor(**FAST), output="expression")
    out = emb.fit(bags, expression=expression).transform(bags)
    np.testing.assert_allclose(out, emb.regressor_.predict(bags))
    assert list(emb.get_feature_names_out()) == ["CD3E", "EPCAM"]
    with pytest.raises(ValueError, match="rows"):
        HE2RNAEmbedder().fit(bags, expression=expression.iloc[:5])
