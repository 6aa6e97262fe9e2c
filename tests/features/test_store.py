import h5py
import numpy as np
import pytest

from he2rna_sklearn import Bag, load_bags
from he2rna_sklearn.features import read_bag, write_bag
from he2rna_sklearn.features._store import BagWriter, H5Array

from ..conftest import DATA


def test_roundtrip_with_attributes(tmp_path):
    feats = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    coords = np.arange(14).reshape(7, 2) * 224
    path = write_bag(
        tmp_path / "s.h5",
        feats,
        coords,
        attrs={"mpp": 0.5, "slide_id": "s1", "backbone": "resnet50"},
    )
    bag = read_bag(path)
    assert isinstance(bag, Bag) and bag.slide_id == "s1"
    np.testing.assert_array_equal(np.asarray(bag), feats)
    np.testing.assert_array_equal(bag.coords, coords)
    assert bag.meta["mpp"] == 0.5 and bag.meta["backbone"] == "resnet50"
    assert bag.meta["format"] == "he2rna-sklearn" and "package_version" in bag.meta
    assert list(tmp_path.iterdir()) == [path]


def test_write_is_atomic(tmp_path, monkeypatch):
    def broken(self, name, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", broken)
    with pytest.raises(OSError, match="disk full"):
        write_bag(tmp_path / "s.h5", np.zeros((2, 3)), np.zeros((2, 2)))
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary is left


def test_reads_stamp_layout():
    bag = read_bag(DATA / "stamp-TCGA-AD-6964-01Z-00-DX1.h5")
    assert bag.shape == (777, 512)
    assert bag.coords.shape == (777, 2) and bag.coords[0].tolist() == [10240, 21504]
    assert bag.slide_id == "stamp-TCGA-AD-6964-01Z-00-DX1"


def test_reads_features_with_tile_names_and_no_coords():
    bag = read_bag(DATA / "metadata-TCGA-3X-AAVA-01Z-00-DX1.h5")
    assert bag.shape == (180, 512) and bag.coords is None
    assert bag.meta["tile_names"][0] == "0_0_0_506.jpg"


def test_clam_layout_and_slide_id_from_folder(tmp_path):
    folder = tmp_path / "TCGA-XX-0001"
    folder.mkdir()
    with h5py.File(folder / "features.h5", "w") as fh:
        fh["features"] = np.ones((3, 4), dtype=np.float32)
        fh["coords"] = np.array([[0, 0], [256, 0], [512, 0]])
        fh["coords"].attrs["patch_size"] = 256
    bag = read_bag(folder / "features.h5")
    assert bag.slide_id == "TCGA-XX-0001" and bag.meta["coords_patch_size"] == 256


def test_lazy_bags_read_on_conversion(tmp_path):
    write_bag(tmp_path / "a.h5", np.full((4, 3), 2.0), np.zeros((4, 2)))
    [bag] = load_bags([tmp_path / "a.h5"], lazy=True)
    assert isinstance(bag.features, H5Array)
    assert bag.shape == (4, 3)
    assert np.asarray(bag).sum() == 24.0


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        read_bag(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "odd.h5", "w") as fh:
        fh["something"] = np.zeros(3)
    with pytest.raises(ValueError, match="odd.h5"):
        read_bag(tmp_path / "odd.h5")
    with pytest.raises(TypeError, match="list"):
        load_bags(str(tmp_path / "odd.h5"))


def test_checksums_are_verified_on_read(tmp_path):
    from he2rna_sklearn.exceptions import FeatureFileError

    feats = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = write_bag(tmp_path / "s.h5", feats, np.zeros((4, 2)))
    with h5py.File(path, "r") as fh:
        assert fh["features"].attrs["checksum"].startswith("sha256:")
        assert fh["coords"].attrs["checksum"].startswith("sha256:")
    with h5py.File(path, "r+") as fh:
        fh["features"][1, 1] = 100.0  # a finite, silent change
    for lazy in (False, True):
        with pytest.raises(FeatureFileError, match="s.h5.*checksum"):
            load_bags([path], lazy=lazy, verify=True)
    [bag] = load_bags([path], verify=False)  # on request only
    assert np.asarray(bag)[1, 1] == 100.0
    with h5py.File(path, "r+") as fh:
        fh["features"][1, 1] = 4.0  # restored
        fh["coords"][0, 0] = 5
    with pytest.raises(FeatureFileError, match="coords"):
        read_bag(path)


def test_truncated_file_error_names_it(tmp_path):
    path = write_bag(tmp_path / "s.h5", np.ones((300, 64)), np.zeros((300, 2)))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(OSError, match="s.h5.*truncated"):
        read_bag(path)


def test_write_leaves_no_temporary_when_interrupted(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with BagWriter(tmp_path / "s.h5", 4, 3, np.zeros((4, 2))) as writer:
            writer[:2] = np.ones((2, 3))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
