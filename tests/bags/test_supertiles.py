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
