import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone

from he2rna_sklearn import SlideFeaturizer
from he2rna_sklearn.datasets import write_pyramidal_tiff
from he2rna_sklearn.exceptions import MissingMPPError
from he2rna_sklearn.features import _featurizer

from ..conftest import CMU_SVS


def _featurizer_for(tiny_cnn, **kwargs):
    params = dict(
        backbone=tiny_cnn, weights=None, mpp=0.5, tile_size=112, progress=False, precision="fp32"
    )
    params.update(kwargs)
    return SlideFeaturizer(**params)


def test_real_svs_gives_bag_inside_slide(tiny_cnn):
    [bag] = _featurizer_for(tiny_cnn).fit_transform([CMU_SVS])
    assert bag.n_tiles > 20 and bag.n_features == 16
    extent = bag.meta["extent"]
    assert extent == pytest.approx(112 * 0.5 / 0.499)
    assert (bag.coords >= 0).all()
    assert (bag.coords[:, 0] + extent <= 2220 + 1e-6).all()
    assert (bag.coords[:, 1] + extent <= 2967 + 1e-6).all()
    assert np.isfinite(np.asarray(bag)).all()
    assert bag.slide_id == "cmu-1-small-region"
    assert bag.meta["backbone"] == "module:TinyCNN"


def test_resnet18_on_real_svs():
    feat = SlideFeaturizer(
        backbone="resnet18", weights=None, mpp=1.0, tile_size=64, max_tiles=12, progress=False
    )
    [bag] = feat.transform([CMU_SVS])
    assert bag.shape == (12, 512)
    assert bag.meta["weights"] == "random-init(seed=0)"


def test_deterministic_and_in_input_order(tiny_cohort, tiny_cnn):
    paths = tiny_cohort.slide_paths[:3]
    feat = _featurizer_for(tiny_cnn, mpp=1.0)
    a = feat.transform(paths)
    b = feat.transform(paths[::-1])[::-1]
    assert [x.slide_id for x in a] == [x.slide_id for x in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        np.testing.assert_array_equal(x.coords, y.coords)


def test_cache_is_reused_and_keyed_by_parameters(tiny_cohort, tiny_cnn, tmp_path, monkeypatch):
    paths = tiny_cohort.slide_paths[:2]
    feat = _featurizer_for(tiny_cnn, mpp=1.0, cache_dir=tmp_path)
    first = feat.transform(paths)
    files = sorted(tmp_path.glob("*.h5"))
    assert len(files) == 2

    def fail(*args, **kwargs):
        raise AssertionError("cached slides must not be featurized again")

    monkeypatch.setattr(_featurizer, "extract_features", fail)
    again = feat.transform(paths)
    np.testing.assert_array_equal(np.asarray(again[0]), np.asarray(first[0]))
    np.testing.assert_array_equal(again[1].coords, first[1].coords)
    monkeypatch.undo()
    feat.set_params(tile_size=96).transform(paths)
    assert len(sorted(tmp_path.glob("*.h5"))) == 4  # a parameter change writes new files


def test_max_tiles(tiny_cohort, tiny_cnn):
    paths = tiny_cohort.slide_paths[:1]
    [full] = _featurizer_for(tiny_cnn, mpp=1.0, tile_size=64).transform(paths)
    [bag] = _featurizer_for(tiny_cnn, mpp=1.0, tile_size=64, max_tiles=5).transform(paths)
    assert full.n_tiles > 5 and bag.n_tiles == 5
    assert {tuple(c) for c in bag.coords} <= {tuple(c) for c in full.coords}


def test_blank_slide_warns_and_gives_empty_bag(tmp_path, tiny_cnn):
    path = write_pyramidal_tiff(
        tmp_path / "blank.tiff", np.full((600, 600, 3), 242, dtype=np.uint8), 0.5
    )
    with pytest.warns(UserWarning, match="No tissue"):
        [bag] = _featurizer_for(tiny_cnn).transform([path])
    assert bag.shape == (0, 16)


def test_missing_mpp_asks_for_slide_mpp(tmp_path, tiny_cnn):
    png = tmp_path / "he.png"
    rng = np.random.default_rng(0)
    img = np.full((400, 400, 3), 240, dtype=np.uint8)
    purple = np.array([170, 80, 140])
    img[50:350, 50:350] = np.clip(purple + rng.normal(0, 15, size=(300, 300, 3)), 0, 255)
    Image.fromarray(img).save(png)
    with pytest.raises(MissingMPPError, match="slide_mpp"):
        _featurizer_for(tiny_cnn).transform([png])
    [bag] = _featurizer_for(tiny_cnn, slide_mpp={"he.png": 0.5}).transform([png])
    assert bag.n_tiles >= 1


def test_input_errors(tiny_cnn, tmp_path):
    feat = _featurizer_for(tiny_cnn)
    with pytest.raises(TypeError, match="list"):
        feat.transform(str(CMU_SVS))
    with pytest.raises(FileNotFoundError, match="absent.svs"):
        feat.transform([tmp_path / "absent.svs"])
    with pytest.raises(ValueError, match="twice"):
        feat.transform([CMU_SVS, CMU_SVS])


def test_clone_and_params(tiny_cnn):
    feat = SlideFeaturizer(mpp=1.0, cache_dir="x")
    copy = clone(feat)
    assert copy.get_params() == feat.get_params()
    with pytest.raises(ValueError, match="mpp"):
        SlideFeaturizer(mpp=-1).fit()
