import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from he2rna_sklearn import Bag, SuperTiles
from he2rna_sklearn.spatial import plot_tile_heatmap, tile_extent, tile_layout


@pytest.fixture
def bag(tiny_cohort, tiny_cnn):
    from he2rna_sklearn import SlideFeaturizer

    feat = SlideFeaturizer(backbone=tiny_cnn, weights=None, mpp=1.0, tile_size=64, progress=False)
    return feat.transform(tiny_cohort.slide_paths[:1])[0]


def test_heatmap_paints_scores_where_the_tiles_are(bag, tmp_path):
    scores = bag.coords[:, 0].astype(float)  # rises from left to right
    ax = plot_tile_heatmap(bag, scores, label="CD3E")
    path = tmp_path / "map.png"
    ax.figure.savefig(path)
    plt.close(ax.figure)
    img = np.asarray(Image.open(path))
    assert img.shape[0] > 100 and img.std() > 10
    assert ax.get_title().startswith("CD3E")
    layer = ax.get_images()[1].get_array()
    painted = ~np.ma.getmaskarray(layer)
    assert 0.05 < painted.mean() < 0.95
    cols = np.nonzero(painted.any(axis=0))[0]
    left, right = layer[:, cols[:3]].mean(), layer[:, cols[-3:]].mean()
    assert right > left


def test_super_tile_scores_painted_back_on_tiles(bag):
    [st] = SuperTiles(n_clusters=5, random_state=0).transform([bag])
    coords, values = tile_layout(st, np.arange(5.0))
    assert coords.shape == bag.coords.shape
    np.testing.assert_array_equal(values, st.assignment.astype(float))
    assert tile_extent(st) == bag.meta["extent"]


def test_extent_from_grid_and_errors():
    b = Bag(np.zeros((3, 2)), coords=[[0, 0], [256, 0], [512, 256]])
    assert tile_extent(b) == 256
    with pytest.raises(ValueError, match="scores"):
        tile_layout(b, [1.0, 2.0])
    with pytest.raises(ValueError, match="slide_path"):
        plot_tile_heatmap(b, [1.0, 2.0, 3.0])
