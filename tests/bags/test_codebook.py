"""TileCodebook: k-means tile types and each slide's fractions of them."""

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline

from he2rna_sklearn.bags import Bag, TileCodebook


def _typed_bags(n_bags=40, seed=0):
    """Tiles of three types along one direction (0, +3, -3 on the first three features);
    y = the share of the two outer types, which the mean features cannot see (they give
    the difference of the two shares)."""
    rng = np.random.default_rng(seed)
    bags, y = [], []
    for _ in range(n_bags):
        shares = rng.dirichlet([1.0, 1.0, 1.0])
        types = rng.choice(3, size=40, p=shares)
        x = rng.normal(scale=0.4, size=(40, 6))
        x[:, :3] += np.array([0.0, 3.0, -3.0])[types, None]
        bags.append(x.astype(np.float32))
        y.append(np.mean(types > 0))
    return bags, np.array(y)


def test_fractions_in_a_pipeline_see_what_mean_pooling_cannot():
    from he2rna_sklearn.bags import BagPooling

    bags, y = _typed_bags()
    codebook = make_pipeline(TileCodebook(3, random_state=0), RidgeCV()).fit(bags[:30], y[:30])
    pooled = make_pipeline(BagPooling(), RidgeCV()).fit(bags[:30], y[:30])
    assert codebook.score(bags[30:], y[30:]) > 0.9
    assert pooled.score(bags[30:], y[30:]) < 0.5


def test_grid_search_over_the_number_of_types():
    bags, y = _typed_bags(60, seed=1)
    groups = np.repeat(np.arange(30), 2)
    search = GridSearchCV(
        make_pipeline(TileCodebook(random_state=0), RidgeCV()),
        {"tilecodebook__n_clusters": [1, 3]},
        cv=GroupKFold(3),
    ).fit(bags, y, groups=groups)
    assert search.best_params_ == {"tilecodebook__n_clusters": 3}
    assert search.predict(bags[:5]).shape == (5,)


def test_fractions_memberships_and_links():
    bags, _ = _typed_bags(10)
    hard = TileCodebook(3, random_state=0).fit(bags)
    F = hard.transform(bags)
    assert F.shape == (10, 3) and np.allclose(F.sum(axis=1), 1.0)
    assert set(np.unique(hard.memberships(bags[0]))) <= {0.0, 1.0}
    soft = TileCodebook(3, temperature=0.5, random_state=0).fit(bags)
    m = soft.memberships(bags[0])
    assert np.allclose(m.sum(axis=1), 1.0) and ((m > 0) & (m < 1)).any()
    root = TileCodebook(3, link="sqrt", random_state=0).fit(bags).transform(bags)
    np.testing.assert_allclose(root, np.sqrt(F + 1e-6))
    # Bag objects and arrays give the same fractions; the same seed the same codebook
    np.testing.assert_array_equal(hard.transform([Bag(b) for b in bags]), F)
    again = TileCodebook(3, random_state=0).fit(bags)
    np.testing.assert_array_equal(again.cluster_centers_, hard.cluster_centers_)
    names = hard.get_feature_names_out()
    assert list(names) == ["tilecodebook0", "tilecodebook1", "tilecodebook2"]


def test_errors():
    bags, _ = _typed_bags(2)
    with pytest.raises(ValueError, match="n_clusters=100 tile types need at least"):
        TileCodebook(100).fit(bags)
    with pytest.raises(ValueError, match="temperature"):
        TileCodebook(2, temperature=-1.0).fit(bags)
    fitted = TileCodebook(2, random_state=0).fit(bags)
    with pytest.raises(ValueError, match="features"):
        fitted.transform([np.zeros((3, 4))])
    with pytest.raises(ValueError, match="no logits"):
        fitted.logit_weights()
