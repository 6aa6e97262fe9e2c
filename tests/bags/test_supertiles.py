import numpy as np
import pytest
from sklearn.base import clone

from he2rna_sklearn import Bag, SuperTiles


def _bag(n=60, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return Bag(
        rng.normal(size=(n, d)),
        coords=rng.integers(0, 10_000, size=(n, 2)),
        slide_id="s",
        meta={"extent": 224.0},
    )


def test_means_of_spatial_clusters():
    bag = _bag()
    [st] = SuperTiles(n_clusters=8, random_state=0).fit_transform([bag])
    assert st.shape == (8, 5) and st.assignment.shape == (60,)
    feats = np.asarray(bag)
    for c in range(8):
        np.testing.assert_allclose(np.asarray(st)[c], feats[st.assignment == c].mean(0), rtol=1e-5)
    np.testing.assert_array_equal(st.tile_coords, bag.coords)
    assert st.slide_id == "s" and st.meta["super_tiles"] == 8 and st.meta["extent"] == 224.0


def test_clusters_are_spatially_compact():
    rng = np.random.default_rng(1)
    # Two far-apart groups of tiles must never share a cluster.
    coords = np.r_[rng.integers(0, 1000, (30, 2)), rng.integers(50_000, 51_000, (30, 2))]
    bag = Bag(rng.normal(size=(60, 3)), coords=coords)
    [st] = SuperTiles(n_clusters=4, random_state=0).transform([bag])
    assert not set(st.assignment[:30]) & set(st.assignment[30:])


def test_capped_at_tile_count_and_deterministic():
    small = _bag(n=5)
    [st] = SuperTiles(n_clusters=100).transform([small])
    assert st.shape == (5, 5)
    a = SuperTiles(n_clusters=10, random_state=3).transform([_bag()])[0]
    b = clone(SuperTiles(n_clusters=10, random_state=3)).transform([_bag()])[0]
    np.testing.assert_array_equal(a.assignment, b.assignment)


def test_needs_coords():
    with pytest.raises(ValueError, match="no tile coordinates"):
        SuperTiles().transform([np.zeros((4, 3))])


def test_cluster_on_features_groups_look_alike_tiles_wherever_they_lie():
    """SEQUOIA's choice: two kinds of tissue scattered over the slide, one super-tile each."""
    rng = np.random.default_rng(2)
    kind = rng.integers(0, 2, size=80)
    feats = rng.normal(scale=0.1, size=(80, 4)) + kind[:, None] * 5.0
    coords = rng.integers(0, 10_000, size=(80, 2))
    bag = Bag(feats, coords=coords, slide_id="s")
    [st] = SuperTiles(n_clusters=2, cluster_on="features", random_state=0).fit_transform([bag])
    assert st.shape == (2, 4) and st.meta["super_tiles_on"] == "features"
    for c in range(2):  # each cluster is one kind of tissue
        assert len(np.unique(kind[st.assignment == c])) == 1
    np.testing.assert_array_equal(st.tile_coords, coords)
    [by_xy] = SuperTiles(n_clusters=2, random_state=0).fit_transform([bag])
    assert any(len(np.unique(kind[by_xy.assignment == c])) == 2 for c in range(2))
    # Without coordinates: features still cluster, and nothing spatial is invented.
    [plain] = SuperTiles(n_clusters=2, cluster_on="features", random_state=0).fit_transform([feats])
    assert plain.coords is None and plain.tile_coords is None and plain.shape == (2, 4)


def test_set_output_keeps_bags_in_a_pipeline():
    from sklearn.pipeline import make_pipeline

    from he2rna_sklearn import HE2RNARegressor

    st = SuperTiles(n_clusters=4, random_state=0)
    assert st.set_output(transform="pandas") is st
    [out] = st.fit_transform([_bag()])
    assert isinstance(out, Bag) and out.shape == (4, 5)
    assert clone(st)._sklearn_output_config == {"transform": "pandas"}
    with pytest.raises(ValueError, match="transform must be"):
        SuperTiles().set_output(transform="arrow")
    pipe = make_pipeline(
        SuperTiles(n_clusters=4, random_state=0),
        HE2RNARegressor(tile_types=8, max_epochs=2, validation_fraction=None, random_state=0),
    ).set_output(transform="pandas")
    bags = [_bag(seed=i) for i in range(6)]
    y = np.random.default_rng(0).normal(size=(6, 3))
    pipe.fit(bags, y)
    assert np.asarray(pipe.predict(bags)).shape == (6, 3)


def test_kmeans_order_is_sequoias_label_order():
    """cluster_order="kmeans": rows in k-means' label order, as SEQUOIA's cluster_features."""
    from sklearn.cluster import KMeans
    from sklearn.utils import check_random_state

    bag = _bag(n=60, d=5, seed=4)
    feats = np.asarray(bag)
    st = SuperTiles(n_clusters=7, cluster_on="features", cluster_order="kmeans", random_state=3)
    [out] = st.fit_transform([bag])
    seed = check_random_state(3).randint(np.iinfo(np.int32).max, size=1)[0]
    labels = KMeans(7, n_init=1, random_state=seed).fit_predict(feats.astype(np.float64))
    expected = np.stack([feats[labels == c].mean(0) for c in range(7)])
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5)
    np.testing.assert_array_equal(out.assignment, labels)
    assert out.meta["super_tiles_order"] == "kmeans"
    # The default numbers the same clusters by their first tile instead.
    [first] = SuperTiles(n_clusters=7, cluster_on="features", random_state=3).transform([bag])
    assert sorted(map(tuple, np.asarray(first))) == sorted(map(tuple, np.asarray(out)))
    assert first.assignment[0] == 0 and first.meta["super_tiles_order"] == "first_tile"


def test_empty_clusters_are_dropped_not_nan():
    """SEQUOIA's mean of an empty cluster is NaN; here the cluster is dropped, so a model
    needing exactly n_clusters rows can refuse the bag by name."""
    import warnings

    feats = np.r_[np.zeros((20, 3)), np.ones((4, 3))].astype(np.float32)  # 2 distinct tiles
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means: fewer distinct points than clusters
        [st] = SuperTiles(
            n_clusters=5, cluster_on="features", cluster_order="kmeans", random_state=0
        ).transform([feats])
    assert st.shape == (2, 3) and np.isfinite(np.asarray(st)).all()
    assert sorted(np.bincount(st.assignment).tolist()) == [4, 20]
