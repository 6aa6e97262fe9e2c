import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import config_context
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from he2rna_sklearn import Bag, MeanFeatureEmbedder
from he2rna_sklearn.metrics import pearson_per_gene
from he2rna_sklearn.model import mean_tile_features

FAST = dict(hidden_layer_sizes=(16, 8), max_epochs=5, validation_fraction=None, random_state=0)


@pytest.fixture(scope="module")
def cohort():
    """36 slides of 18 patients (two slides each); MSI-like label raises feature 0."""
    rng = np.random.default_rng(0)
    n = 36
    msi = np.repeat(np.arange(n // 2) % 2, 2)
    bags = []
    for label in msi:
        x = rng.normal(size=(int(rng.integers(20, 40)), 6)).astype(np.float32)
        x[:, 0] += 0.5 * label
        bags.append(x)
    expression = pd.DataFrame(
        {"CD3E": [b[:, 0].mean() for b in bags], "EPCAM": [b[:, 1].mean() for b in bags]},
        index=[f"S{i:02d}" for i in range(n)],
    )
    groups = np.arange(n) // 2
    return bags, msi, expression, groups


class SpyEmbedder(MeanFeatureEmbedder):
    """Records the expression rows (slide ids) and the bag count each fit sees."""

    seen = []

    def fit(self, X, y=None, *, expression=None, groups=None):
        SpyEmbedder.seen.append((list(expression.index), len(X), list(np.asarray(groups))))
        return super().fit(X, y, expression=expression, groups=groups)


def test_mean_tile_features():
    bags = [np.arange(6.0).reshape(3, 2), Bag(np.ones((4, 2)), coords=np.zeros((4, 2)))]
    np.testing.assert_allclose(mean_tile_features(bags), [[2.0, 3.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="expected 2"):
        mean_tile_features([np.ones((3, 3))], n_features=2)


def test_grid_search_refits_per_fold_on_training_rows_only(cohort):
    bags, msi, expression, groups = cohort
    SpyEmbedder.seen = []
    pipe = make_pipeline(SpyEmbedder(**FAST), StandardScaler(), LogisticRegression())
    cv = StratifiedGroupKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0]}, cv=cv, scoring="roc_auc")
    with config_context(enable_metadata_routing=True):
        search.fit(bags, msi, expression=expression, groups=groups)
    ids = np.asarray(expression.index)
    splits = list(cv.split(bags, msi, groups))
    assert len(SpyEmbedder.seen) == 2 * 3 + 1  # 2 candidates x 3 folds, then the refit
    for (seen_ids, n_bags, seen_groups), (train, test) in zip(SpyEmbedder.seen, splits * 2):
        assert seen_ids == list(ids[train])  # exactly the training fold's rows, in order
        assert n_bags == len(train) and seen_groups == list(groups[train])
        assert not set(seen_ids) & set(ids[test])
    assert SpyEmbedder.seen[-1][0] == list(ids)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_[0].transform(bags).shape == (36, 8)


def test_each_fold_model_is_the_model_of_its_training_rows(cohort):
    """A fold's fitted embedder equals one fitted outside CV on the training rows alone."""
    bags, msi, expression, groups = cohort
    params = dict(FAST, validation_fraction=0.25, max_epochs=8)
    pipe = make_pipeline(MeanFeatureEmbedder(**params), StandardScaler(), LogisticRegression())
    with config_context(enable_metadata_routing=True):
        result = cross_validate(
            pipe,
            bags,
            msi,
            cv=StratifiedGroupKFold(3),
            params={"expression": expression, "groups": groups},
            return_estimator=True,
            return_indices=True,
        )
    for est, train in zip(result["estimator"], result["indices"]["train"]):
        alone = MeanFeatureEmbedder(**params).fit(
            [bags[i] for i in train], expression=expression.iloc[train], groups=groups[train]
        )
        np.testing.assert_array_equal(est[0].transform(bags), alone.transform(bags))


def test_learns_expression_from_mean_features():
    rng = np.random.default_rng(1)
    bags = [rng.normal(size=(int(rng.integers(10, 40)), 8)).astype(np.float32) for _ in range(90)]
    means = mean_tile_features(bags)
    Y = pd.DataFrame({"A": 3 * means[:, 0] + 1, "B": means[:, 1] - means[:, 2]})
    emb = MeanFeatureEmbedder(
        hidden_layer_sizes=(32, 8),
        output="expression",
        max_epochs=400,
        patience=10,
        random_state=0,
    ).fit(bags[:70], expression=Y.iloc[:70])
    pred = emb.transform(bags[70:])
    assert (pearson_per_gene(Y.iloc[70:], pred) > 0.9).all()
    assert list(emb.get_feature_names_out()) == ["A", "B"]
    # Stopped early on the validation loss, with the best epoch's weights restored.
    losses = [row["valid_loss"] for row in emb.history_]
    assert len(losses) < 400 and emb.best_score_ <= min(losses) + 1e-4  # threshold 1e-4
    assert emb.history_[emb.best_epoch_ - 1]["valid_loss"] == emb.best_score_
    # Training for best_epoch_ epochs alone (same seed, same split) ends on those weights.
    short = clone(emb).set_params(max_epochs=emb.best_epoch_).fit(bags[:70], expression=Y.iloc[:70])
    np.testing.assert_array_equal(short.transform(bags), emb.transform(bags))
    # The embedding is the last (sigmoid) hidden layer of the same network.
    emb.set_params(output="embedding")
    z = emb.transform(bags)
    assert z.shape == (90, 8) and (z > 0).all() and (z < 1).all()
    out = emb.module_.output(torch.as_tensor(z)).detach().numpy()
    expected = out * emb._y_scale + emb._y_mean
    np.testing.assert_allclose(
        expected, emb.set_params(output="expression").transform(bags), rtol=1e-4, atol=1e-5
    )


def test_seeded_refit_and_pickle(cohort):
    bags, _, expression, groups = cohort
    params = dict(FAST, dropout=0.2, validation_fraction=0.2)
    a = MeanFeatureEmbedder(**params).fit(bags, expression=expression, groups=groups)
    b = clone(a).fit(bags, expression=expression, groups=groups)
    np.testing.assert_array_equal(a.transform(bags), b.transform(bags))
    c = MeanFeatureEmbedder(**dict(params, random_state=1)).fit(bags, expression=expression)
    assert not np.allclose(a.transform(bags), c.transform(bags))
    again = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(again.transform(bags), a.transform(bags))
    assert list(a.get_feature_names_out())[:2] == ["meanfeatureembedder0", "meanfeatureembedder1"]


def test_never_fits_on_labels_and_clear_errors(cohort):
    bags, msi, expression, groups = cohort
    pipe = make_pipeline(MeanFeatureEmbedder(**FAST), LogisticRegression())
    with pytest.raises(ValueError, match="never from y"):
        pipe.fit(bags, msi)
    pipe.fit(bags, msi, meanfeatureembedder__expression=expression)
    assert list(pipe[0].gene_names_) == ["CD3E", "EPCAM"]
    emb = MeanFeatureEmbedder(**FAST)
    with pytest.raises(ValueError, match="rows"):
        emb.fit(bags, expression=expression.iloc[:5])
    bad = expression.copy()
    bad.iloc[3, 0] = np.nan
    with pytest.raises(ValueError, match="expression has NaN"):
        emb.fit(bags, expression=bad)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MeanFeatureEmbedder(hidden_layer_sizes=()).fit(bags, expression=expression)
    with pytest.raises(ValueError, match="validation_fraction"):
        MeanFeatureEmbedder(validation_fraction=0.5).fit(
            bags[:6], expression=expression.iloc[:6], groups=groups[:6]
        )
    emb.fit(bags, expression=expression)
    with pytest.raises(ValueError, match="has 5 features, expected 6"):
        emb.transform([np.ones((3, 5), np.float32)])
    with pytest.raises(ValueError, match="NaN"):
        emb.transform([np.full((3, 6), np.nan, np.float32)])
