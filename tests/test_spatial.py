import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from he2rna_sklearn import Bag, SuperTiles
from he2rna_sklearn.spatial import (
    export_tile_scores,
    plot_tile_heatmap,
    spatial_auc,
    tile_extent,
    tile_layout,
    tile_mask_fraction,
)

from .conftest import CMU_SVS


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


def _bag_in(unit):
    """Three tiles whose coords are not level-0 pixels: STAMP µm, or HE2RNA DeepZoom px."""
    meta = {"coords_unit": unit, "feature_file": f"slide-1.{'h5' if unit == 'um' else 'npy'}"}
    if unit == "um":
        meta["extent_um"] = 256.0
    else:
        meta.update(extent=224.0, deepzoom_level=15)
    step = 256 if unit == "um" else 224
    coords = np.array([[0, 0], [step, 0], [0, step]]) + 10 * step
    return Bag(np.zeros((3, 4)), coords=coords, slide_id="slide-1", meta=meta)


@pytest.mark.parametrize(
    "unit, fix",
    [
        ("um", r"in µm.*read_bag\('slide-1\.h5', slide_mpp="),
        ("deepzoom_px", r"DeepZoom.*read_he2rna_npy\('slide-1\.npy', slide_dimensions="),
        ("mm", r"'mm'"),
    ],
    ids=["um", "deepzoom_px", "unknown"],
)
def test_tiles_not_in_level0_pixels_are_not_placed_on_the_slide(tmp_path, unit, fix):
    """µm (STAMP) or DeepZoom-level (HE2RNA .npy) coords drawn as level-0 pixels would land
    in the wrong place: every function that places tiles on the slide refuses them, with a
    one-line error that says how to re-read the file; super-tiles carry the unit along."""
    bag = _bag_in(unit)
    [st] = SuperTiles(n_clusters=2, random_state=0).transform([bag])  # units don't matter
    assert st.meta["coords_unit"] == unit
    assert tile_layout(st, [1.0, 2.0])[0].tolist() == bag.coords.tolist()  # in the bag's unit
    mask = np.ones((100, 100))
    for b in (bag, st):
        scores = np.arange(b.n_tiles, dtype=float)
        calls = [
            (plot_tile_heatmap, b, scores, {"slide_path": CMU_SVS}),
            (tile_extent, b, {}),
            (tile_mask_fraction, b, mask, 50, {}),
        ] + [
            (export_tile_scores, b, scores, tmp_path / f"t{suffix}", {})
            for suffix in (".csv", ".parquet", ".geojson", ".h5ad")
        ]
        for func, *args, kwargs in calls:
            with pytest.raises(ValueError, match=fix) as err:
                func(*args, **kwargs)
            message = str(err.value)
            assert "\n" not in message and message.startswith(f"{func.__name__} needs")
            assert "level-0 pixels" in message
    assert not list(tmp_path.iterdir())
    # The same tiles in level-0 pixels (explicit, or without coords_unit: our own files).
    for meta in ({"coords_unit": "px", "extent": 256}, {"extent": 256}):
        px = Bag(np.zeros((3, 4)), coords=bag.coords, meta=meta)
        assert tile_extent(px) == 256
        assert tile_mask_fraction(px, mask, 50).tolist() == [1.0, 1.0, 1.0]
        export_tile_scores(px, np.arange(3.0), tmp_path / "px.csv")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A regressor trained on 14 synthetic patients, and the slides of 6 held-out ones."""
    from he2rna_sklearn import HE2RNARegressor, SlideFeaturizer
    from he2rna_sklearn.datasets import make_synthetic_cohort

    cohort = make_synthetic_cohort(
        n_patients=20,
        out_dir=tmp_path_factory.mktemp("sp"),
        grid=(10, 12),
        random_state=5,
        progress=False,
    )
    feat = SlideFeaturizer(backbone="resnet18", weights=None, mpp=1.0, tile_size=64, progress=False)
    bags = feat.transform(cohort.slide_paths)
    patients = np.unique(cohort.patient_ids)
    test = np.isin(cohort.patient_ids, patients[14:])
    model = HE2RNARegressor(
        lr=1e-3,
        validation_fraction=None,
        max_epochs=80,
        random_state=0,
    )
    model.fit([b for b, t in zip(bags, test) if not t], cohort.expression[~test])
    return cohort, bags, test, model


def test_lymphocyte_marker_lights_up_lymphoid_tiles(trained):
    from he2rna_sklearn.datasets import tile_classes

    cohort, bags, test, model = trained
    lymphoid = cohort.class_names.index("lymphoid")
    aucs = []
    for i in np.flatnonzero(test):
        labels = tile_classes(
            bags[i].coords, bags[i].meta["extent"], cohort.class_maps[i], cohort.cell_size
        )
        if 0 < (labels == lymphoid).sum() < len(labels):
            aucs.append(spatial_auc(model.predict_tiles(bags[i], "CD3E"), labels, lymphoid))
    assert len(aucs) >= 3
    assert np.mean(aucs) >= 0.8


def test_gene_set_scores_are_mean_z_scores(trained):
    _, bags, _, model = trained
    full = model.predict_tiles(bags[0])
    genes = ["CD3E", "MS4A1"]
    idx = [list(model.gene_names_).index(g) for g in genes]
    z = (full[:, idx] - full[:, idx].mean(0)) / full[:, idx].std(0)
    np.testing.assert_allclose(model.predict_tiles(bags[0], genes), z.mean(1), rtol=1e-5)
    np.testing.assert_array_equal(model.predict_tiles(bags[0], "CD3E"), full[:, idx[0]])
    with pytest.raises(ValueError, match="Unknown genes"):
        model.predict_tiles(bags[0], ["NOT_A_GENE"])


def test_spatial_auc_checks():
    assert spatial_auc([0.1, 0.9, 0.2, 0.8], ["a", "lym", "a", "lym"], "lym") == 1.0
    assert spatial_auc([0.1, 0.9, 0.05], [1, 2, 3], [2, 3]) == 0.5
    with pytest.raises(ValueError, match="both"):
        spatial_auc([0.1, 0.2], ["a", "a"], "lym")


@pytest.mark.parametrize("suffix", [".csv", ".geojson", ".parquet", ".h5ad"])
def test_exports(bag, tmp_path, suffix):
    import json

    import pandas as pd

    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    if suffix == ".h5ad":
        anndata = pytest.importorskip("anndata")
    scores = np.column_stack([np.arange(bag.n_tiles), -np.arange(bag.n_tiles)]).astype(float)
    path = export_tile_scores(bag, scores, tmp_path / f"tiles{suffix}", names=["CD3E", "EPCAM"])
    extent = bag.meta["extent"]
    if suffix == ".csv":
        table = pd.read_csv(path)
        assert list(table.columns) == ["slide_id", "x", "y", "width", "height", "CD3E", "EPCAM"]
        np.testing.assert_array_equal(table[["x", "y"]], bag.coords)
    elif suffix == ".parquet":
        assert pd.read_parquet(path)["EPCAM"].min() == -(bag.n_tiles - 1)
    elif suffix == ".geojson":
        data = json.loads(path.read_text())
        assert data["type"] == "FeatureCollection" and len(data["features"]) == bag.n_tiles
        first = data["features"][1]
        ring = np.array(first["geometry"]["coordinates"][0])
        np.testing.assert_allclose(ring[0], bag.coords[1])
        np.testing.assert_allclose(ring[2], bag.coords[1] + extent)
        assert first["properties"]["measurements"] == {"CD3E": 1.0, "EPCAM": -1.0}
    else:
        adata = anndata.read_h5ad(path)
        assert adata.shape == (bag.n_tiles, 2) and list(adata.var_names) == ["CD3E", "EPCAM"]
        np.testing.assert_allclose(adata.obsm["spatial"], bag.coords + extent / 2)


def test_export_paints_super_tiles_back(bag, tmp_path):
    import pandas as pd

    [st] = SuperTiles(n_clusters=4, random_state=0).transform([bag])
    path = export_tile_scores(st, np.arange(4.0), tmp_path / "st.csv")
    table = pd.read_csv(path)
    assert len(table) == bag.n_tiles
    np.testing.assert_array_equal(table["score_0"], st.assignment)


@pytest.fixture(scope="module")
def fold_models():
    """Three small regressors trained on different random bags (16 features, 3 genes)."""
    import pandas as pd

    from he2rna_sklearn import HE2RNARegressor

    from .conftest import random_bags

    models = []
    for seed in range(3):
        bags = random_bags(20, n_features=16, seed=seed)
        y = pd.DataFrame(
            {
                "CD3E": [b[:, 0].max() for b in bags],
                "MS4A1": [b[:, 1].mean() for b in bags],
                "EPCAM": [b[:, 2].min() for b in bags],
            }
        )
        fast = dict(tile_types=4, max_epochs=3, validation_fraction=None)
        models.append(HE2RNARegressor(**fast, random_state=seed).fit(bags, y))
    return models


def _z(a):
    a = np.asarray(a, dtype=np.float64)
    return (a - a.mean(axis=0)) / a.std(axis=0)


def test_ensemble_map_is_the_mean_of_single_model_z_maps(bag, fold_models):
    from he2rna_sklearn.spatial import ensemble_tile_scores

    single = [_z(m.predict_tiles(bag)) for m in fold_models]  # (n_tiles, 3) z-scored each
    np.testing.assert_allclose(ensemble_tile_scores(fold_models, bag), np.mean(single, axis=0))
    one = ensemble_tile_scores(fold_models, bag, "MS4A1")
    np.testing.assert_allclose(one, np.mean([s[:, 1] for s in single], axis=0))
    gene_set = ensemble_tile_scores(fold_models, bag, ["CD3E", "EPCAM"])
    expected = np.mean([s[:, [0, 2]] for s in single], axis=(0, 2))
    np.testing.assert_allclose(gene_set, expected, rtol=1e-5, atol=1e-6)  # float32 z-scores
    # one model is an ensemble of one; the models do differ
    np.testing.assert_allclose(ensemble_tile_scores(fold_models[0], bag, "MS4A1"), single[0][:, 1])
    assert not np.allclose(single[0], single[1])


def test_heatmap_and_exports_take_fold_models(bag, fold_models, tmp_path):
    import pandas as pd

    from he2rna_sklearn.spatial import ensemble_tile_scores

    expected = ensemble_tile_scores(fold_models, bag, ["CD3E", "MS4A1"])
    path = export_tile_scores(bag, fold_models, tmp_path / "ens.csv", genes=["CD3E", "MS4A1"])
    table = pd.read_csv(path)
    np.testing.assert_allclose(table["CD3E+MS4A1"], expected)
    every = pd.read_csv(export_tile_scores(bag, fold_models, tmp_path / "all.csv"))
    assert list(every.columns[-3:]) == ["CD3E", "MS4A1", "EPCAM"]
    np.testing.assert_allclose(
        every[["CD3E", "MS4A1", "EPCAM"]], ensemble_tile_scores(fold_models, bag)
    )

    ax = plot_tile_heatmap(bag, fold_models, genes="CD3E")
    layer = ax.get_images()[1].get_array()
    painted = np.unique(np.ma.compressed(layer))
    values = ensemble_tile_scores(fold_models, bag, "CD3E")
    assert np.isin(painted, values).all() and len(painted) > 0.5 * len(np.unique(values))
    assert "CD3E (z-score, mean of 3 models)" in ax.figure.axes[-1].get_ylabel()
    plt.close(ax.figure)


def test_ensemble_errors(bag, fold_models):
    from he2rna_sklearn.spatial import ensemble_tile_scores

    with pytest.raises(TypeError, match="predict_tiles"):
        ensemble_tile_scores([], bag)
    with pytest.raises(TypeError, match="mixes fitted models"):
        export_tile_scores(bag, [fold_models[0], np.zeros(3)], "x.csv")
    with pytest.raises(ValueError, match="pass genes="):
        plot_tile_heatmap(bag, fold_models)
    with pytest.raises(ValueError, match="genes= selects"):
        plot_tile_heatmap(bag, np.zeros(bag.n_tiles), genes="CD3E")
    with pytest.raises(ValueError, match="Unknown genes"):
        ensemble_tile_scores(fold_models, bag, "NOT_A_GENE")
    other = type(fold_models[0])(tile_types=4, max_epochs=1, validation_fraction=None)
    other.fit([np.asarray(bag)] * 4, np.arange(4.0))
    with pytest.raises(ValueError, match="different genes"):
        ensemble_tile_scores([fold_models[0], other], bag)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_spatial_correlation_matches_scipy(method):
    from scipy import stats

    from he2rna_sklearn.spatial import spatial_correlation

    rng = np.random.default_rng(0)
    fraction = rng.random(200)
    scores = 2 * fraction + rng.normal(0, 0.5, 200)
    expected = (stats.pearsonr if method == "pearson" else stats.spearmanr)(scores, fraction)
    assert spatial_correlation(scores, fraction, method=method) == pytest.approx(
        expected[0], abs=1e-12
    )
    assert spatial_correlation(-scores, fraction, method=method) == pytest.approx(-expected[0])


def test_spatial_correlation_checks():
    from he2rna_sklearn.spatial import spatial_correlation

    with pytest.raises(ValueError, match="3 tile scores for 2"):
        spatial_correlation([1, 2, 3], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"tile_fraction must lie in \[0, 1\]"):
        spatial_correlation([1, 2, 3], [0, 50, 100])
    with pytest.raises(ValueError, match="tile_scores is constant"):
        spatial_correlation([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="tile_fraction has NaN"):
        spatial_correlation([1, 2, 3], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="method"):
        spatial_correlation([1, 2, 3], [0.1, 0.2, 0.3], method="kendall")


def test_tile_mask_fraction():
    from he2rna_sklearn.spatial import tile_mask_fraction

    b = Bag(np.zeros((3, 2)), coords=[[0, 0], [100, 0], [50, 100]], meta={"extent": 100})
    mask = np.zeros((4, 4), bool)  # 50 level-0 px per mask pixel: 2 x 2 pixels per tile
    mask[0, 2] = True  # a quarter of tile 1
    mask[2:, 1] = True  # half of tile 2 (columns 1-2 from x = 50)
    np.testing.assert_allclose(tile_mask_fraction(b, mask, 50), [0.0, 0.25, 0.5])
    # A tile straddling mask pixels is weighted by area: x = 25 covers half of pixel 0.
    half = Bag(np.zeros((1, 2)), coords=[[25, 0]], meta={"extent": 50})
    np.testing.assert_allclose(tile_mask_fraction(half, np.array([[1.0, 0.0]]), 50), [0.5])
    # Super-tiles: one fraction per source tile, in tile_layout's order.
    [st] = SuperTiles(n_clusters=2, random_state=0).transform([b])
    np.testing.assert_allclose(tile_mask_fraction(st, mask, 50), [0.0, 0.25, 0.5])
    with pytest.raises(ValueError, match="outside the mask"):
        tile_mask_fraction(b, mask, 5)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        tile_mask_fraction(b, mask * 255.0, 50)


def test_lymphoid_fraction_correlates_with_cd3e_scores(trained):
    """The PESO-style check on the synthetic cohort: lymphoid cover vs CD3E tile scores."""
    from he2rna_sklearn.spatial import spatial_correlation, tile_mask_fraction

    cohort, bags, test, model = trained
    lymphoid = cohort.class_names.index("lymphoid")
    rs = []
    for i in np.flatnonzero(test):
        fraction = tile_mask_fraction(bags[i], cohort.class_maps[i] == lymphoid, cohort.cell_size)
        if np.ptp(fraction) > 0:
            rs.append(spatial_correlation(model.predict_tiles(bags[i], "CD3E"), fraction))
    assert len(rs) >= 3
    assert np.mean(rs) >= 0.35  # 0.52 here; unrelated maps give about 0


def test_heatmap_refuses_a_slide_of_another_size_than_trident_recorded(tmp_path):
    from he2rna_sklearn.features import read_bag

    from .features.test_interop import GRID, _features, write_trident

    bag = read_bag(write_trident(tmp_path / "t.h5", GRID * 256, _features(), level0_mag=20))
    with pytest.raises(
        ValueError, match=r"is 2220 x 2967 px, but the feature file .* 10000 x 8000"
    ):
        plot_tile_heatmap(bag, np.arange(12.0), slide_path=CMU_SVS)
