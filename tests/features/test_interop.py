"""Other tools' feature files, both ways: TRIDENT, CLAM, STAMP, .pt, HE2RNA .npy."""

import pickle
import warnings

import h5py
import numpy as np
import openslide
import openslide.deepzoom
import pandas as pd
import pytest
import torch

from he2rna_sklearn import SlideFeaturizer, load_bags
from he2rna_sklearn.features import (
    read_bag,
    read_he2rna_npy,
    read_pt_features,
    write_bag,
)
from he2rna_sklearn.features._extract import TileDataset
from he2rna_sklearn.features._interop import coords_attrs
from he2rna_sklearn.slides import SlideReader, plan_geometry
from he2rna_sklearn.spatial import export_tile_scores, tile_extent

from ..conftest import CMU_SVS, DATA

GRID = np.array([[x, y] for y in (0, 1, 2) for x in (0, 1, 2, 3)])  # 12 tiles, row-major


def _features(n=12, d=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def write_trident(path, coords, features, *, patch_size=256, level0_mag=40, target_mag=20):
    """A TRIDENT feature file (its layout: coords attributes on the coords dataset)."""
    with h5py.File(path, "w") as fh:
        fh["features"] = features
        fh["features"].attrs.update({"name": path.stem, "savetodir": "x", "encoder": "uni_v1"})
        fh["coords"] = coords
        fh["coords"].attrs.update(
            {
                "patch_size": patch_size,
                "patch_size_level0": patch_size * level0_mag // target_mag,
                "level0_magnification": level0_mag,
                "target_magnification": target_mag,
                "overlap": 0,
                "name": path.stem,
                "savetodir": "x",
                "level0_width": 10_000,
                "level0_height": 8_000,
            }
        )
    return path


def test_trident_squares_are_level0_patch_size(tmp_path):
    """256-px patches at 20x of a 40x slide cover 512 level-0 px: squares of 512, not 256."""
    coords = GRID * 512
    path = write_trident(tmp_path / "slide-a.h5", coords, _features())
    bag = read_bag(path)
    assert bag.meta["source_format"] == "trident"
    assert bag.meta["extent"] == 512 and bag.meta["tile_size"] == 256
    assert bag.meta["magnification"] == 20
    np.testing.assert_array_equal(bag.coords, coords)
    assert tile_extent(bag) == 512
    export_tile_scores(bag, np.arange(12.0), tmp_path / "scores.csv", names=["g"])
    table = pd.read_csv(tmp_path / "scores.csv")
    squares = table[["x", "y", "width", "height"]].to_numpy()
    np.testing.assert_array_equal(squares[:, :2], coords)
    assert (squares[:, 2:] == 512).all()


def test_trident_empty_slide(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as fh:
        fh["features"] = np.empty((0,), dtype=np.float32)
        fh["coords"] = np.empty((0, 2), dtype=np.int64)
    bag = read_bag(path)
    assert bag.shape == (0, 0)


@pytest.mark.parametrize(
    "attrs, extent",
    [
        ({"patch_level": 0, "patch_size": 256}, 256),
        ({"patch_level": 1, "patch_size": 256, "downsample": [4.0, 4.0]}, 1024),
        ({"patch_level": 1, "patch_size": 256, "custom_downsample": 2, "downsample": [4, 4]}, 2048),
        ({"patch_level": 2, "patch_size": 256}, 4096),  # unknown level: the coords grid
    ],
)
def test_clam_geometry(tmp_path, attrs, extent):
    coords = GRID * extent
    path = tmp_path / "clam.h5"
    with h5py.File(path, "w") as fh:
        fh["features"] = _features()
        fh["coords"] = coords
        fh["coords"].attrs.update(attrs)
    bag = read_bag(path)
    assert bag.meta["source_format"] == "clam"
    assert bag.meta["extent"] == extent and tile_extent(bag) == extent
    assert ("extent_from" in bag.meta) == ("downsample" not in attrs and attrs["patch_level"] > 0)


def _stamp(path, coords_um, attrs):
    with h5py.File(path, "w") as fh:
        fh["feats"] = _features(len(coords_um)).astype(np.float16)
        fh["coords"] = coords_um
        fh.attrs.update(attrs)
    return path


@pytest.mark.parametrize(
    "attrs",
    [
        {"unit": "um", "tile_size_um": 256.0, "tile_size_px": 224, "extractor": "uni"},
        {"unit": "um", "tile_size": 256.0},  # STAMP 2.0
    ],
)
def test_stamp_um_to_level0_pixels(tmp_path, attrs):
    coords_um = GRID * 256.0 + 1000.0
    path = _stamp(tmp_path / "TCGA-XX-0001.h5", coords_um, attrs)
    bag = read_bag(path, slide_mpp=0.25)
    np.testing.assert_array_equal(bag.coords, (coords_um / 0.25).astype(int))
    assert bag.coords.dtype == np.int64
    assert bag.meta["extent"] == 1024 and bag.meta["coords_unit"] == "px"
    assert tile_extent(bag) == 1024
    if "tile_size_px" in attrs:
        assert bag.meta["tile_size"] == 224 and bag.meta["mpp"] == pytest.approx(256 / 224)
    # A mapping by stem, as load_bags gets it for a cohort.
    [bag2] = load_bags([path], slide_mpp={"TCGA-XX-0001": 0.5})
    np.testing.assert_array_equal(bag2.coords, (coords_um / 0.5).astype(int))


def test_stamp_um_without_slide_mpp_warns_and_keeps_um(tmp_path):
    coords_um = GRID * 256.0
    path = _stamp(tmp_path / "s.h5", coords_um, {"unit": "um", "tile_size_um": 256.0})
    with pytest.warns(UserWarning, match=r"in µm.*slide_mpp="):
        bag = read_bag(path)
    assert bag.meta["coords_unit"] == "um" and "extent" not in bag.meta
    np.testing.assert_array_equal(bag.coords, coords_um)
    # µm drawn as level-0 pixels would land in the wrong place: exports refuse, and say how.
    with pytest.raises(ValueError, match=r"in µm.*read_bag\('.*s\.h5', slide_mpp="):
        export_tile_scores(bag, np.arange(12.0), tmp_path / "scores.geojson")
    export_tile_scores(read_bag(path, slide_mpp=0.5), np.arange(12.0), tmp_path / "s.csv")
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "s.csv")[["x", "y"]], coords_um / 0.5)


def test_stamp_pixels_unchanged():
    bag = read_bag(DATA / "stamp-TCGA-AD-6964-01Z-00-DX1.h5")
    assert bag.coords[0].tolist() == [10240, 21504]
    assert bag.meta["source_format"] == "stamp" and bag.meta["coords_unit"] == "px"


def test_pt_files_of_clam_and_trident(tmp_path):
    feats = _features()
    torch.save(torch.from_numpy(feats), tmp_path / "clam.pt")  # CLAM: a tensor
    torch.save(feats, tmp_path / "trident.pt")  # TRIDENT: a numpy array
    torch.save(torch.from_numpy(feats)[None], tmp_path / "batched.pt")
    torch.save({"features": torch.from_numpy(feats), "coords": GRID * 224}, tmp_path / "d.pt")
    for name in ("clam", "trident", "batched", "d"):
        bag = read_bag(tmp_path / f"{name}.pt")
        np.testing.assert_array_equal(np.asarray(bag), feats)
        assert bag.slide_id == name and bag.meta["source_format"] == "pt"
    assert read_bag(tmp_path / "d.pt").coords.tolist() == (GRID * 224).tolist()
    assert read_bag(tmp_path / "clam.pt").coords is None
    [bag] = load_bags([tmp_path / "trident.pt"], lazy=True)
    assert bag.shape == (12, 6)
    torch.save(np.empty((0,), np.float32), tmp_path / "empty.pt")
    assert read_pt_features(tmp_path / "empty.pt").shape == (0, 0)


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pt_files_are_read_with_weights_only(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump(_Evil(), fh)
    with pytest.raises(ValueError, match=r"evil\.pt.*weights_only=True"):
        read_bag(path)
    assert "code ran" not in capsys.readouterr().out
    torch.save({"weights": torch.zeros(2)}, tmp_path / "nofeat.pt")
    with pytest.raises(ValueError, match="without 'features'"):
        read_bag(tmp_path / "nofeat.pt")


def _he2rna_rows(level, cells, feats):
    rows = np.zeros((len(cells), 3 + feats.shape[1]))
    rows[:, 0] = level
    rows[:, 1:3] = cells
    rows[:, 3:] = feats
    return rows


def test_he2rna_npy_geometry_matches_openslide_deepzoom(tmp_path):
    """Tile addresses of DeepZoomGenerator(224, overlap 0) become level-0 squares."""
    slide = openslide.OpenSlide(str(CMU_SVS))
    dz = openslide.deepzoom.DeepZoomGenerator(slide, tile_size=224, overlap=0)
    level = dz.level_count - 2  # half resolution
    cells = np.array([[0, 0], [1, 0], [2, 3], [3, 4]])  # whole tiles (edge tiles are clipped)
    feats = _features(4, 2048)
    arr = np.vstack([_he2rna_rows(level, cells, feats), np.zeros((3, 2051))])  # + padding
    np.save(tmp_path / "TCGA-AA-0001.npy", arr)

    bag = read_he2rna_npy(tmp_path / "TCGA-AA-0001.npy", slide_dimensions=slide.dimensions)
    assert bag.shape == (4, 2048) and bag.slide_id == "TCGA-AA-0001"
    np.testing.assert_array_equal(np.asarray(bag), feats)
    for (col, row), xy in zip(cells, bag.coords):
        (x0, y0), _, size = dz.get_tile_coordinates(level, (int(col), int(row)))
        assert tuple(xy) == (x0, y0)
        assert size == (448, 448)  # read at level 0 (the slide's only one): twice 224
    assert bag.meta["extent"] == 448 and bag.meta["coords_unit"] == "px"

    plain = read_bag(tmp_path / "TCGA-AA-0001.npy")  # without the slide's dimensions
    assert plain.meta["coords_unit"] == "deepzoom_px" and plain.meta["deepzoom_level"] == level
    np.testing.assert_array_equal(plain.coords, cells * 224)
    with pytest.raises(ValueError, match=r"DeepZoom level.*read_he2rna_npy\(.*slide_dimensions="):
        export_tile_scores(plain, np.arange(4.0), tmp_path / "scores.csv")


def test_he2rna_npy_errors(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"a\.npy.*3 \+ n_features"):
        read_bag(tmp_path / "a.npy")
    arr = np.vstack(
        [_he2rna_rows(12, [[0, 0]], _features(1, 4)), _he2rna_rows(11, [[1, 0]], _features(1, 4))]
    )
    np.save(tmp_path / "b.npy", arr)
    with pytest.raises(ValueError, match="mixes DeepZoom levels"):
        read_bag(tmp_path / "b.npy")
    np.save(tmp_path / "c.npy", _he2rna_rows(20, [[0, 0]], _features(1, 4)))
    with pytest.raises(ValueError, match="wrong slide_dimensions"):
        read_he2rna_npy(tmp_path / "c.npy", slide_dimensions=(1000, 1000))


def _clam_read_tile(h5_path, slide_path, i):
    """What CLAM's Whole_Slide_Bag_FP does with a coords file: read_region(coord,
    patch_level, (patch_size, patch_size)) of the slide."""
    with h5py.File(h5_path, "r") as fh:
        coord = fh["coords"][i]
        level = fh["coords"].attrs["patch_level"]
        size = fh["coords"].attrs["patch_size"]
        features = fh["features"][:]
    with openslide.OpenSlide(str(slide_path)) as slide:
        img = slide.read_region(tuple(int(c) for c in coord), int(level), (int(size), int(size)))
    return np.asarray(img.convert("RGB")), features


def test_own_files_are_read_by_clam_and_trident(tiny_cnn, tmp_path):
    """A file written by SlideFeaturizer has what CLAM and TRIDENT read: CLAM's reading
    gives back the very tiles the backbone saw, TRIDENT's attributes the same squares."""
    feat = SlideFeaturizer(
        backbone=tiny_cnn,
        weights=None,
        mpp=0.5,
        tile_size=112,
        max_tiles=5,
        cache_dir=tmp_path,
        progress=False,
    )
    [bag] = feat.fit_transform([CMU_SVS])
    path = bag.meta["feature_file"]
    with SlideReader(CMU_SVS) as reader:
        geometry = plan_geometry(reader, 0.5, 112)
    dataset = TileDataset(CMU_SVS, None, bag.coords, geometry)
    for i in range(3):
        tile, features = _clam_read_tile(path, CMU_SVS, i)
        np.testing.assert_array_equal(tile, dataset[i].numpy().transpose(1, 2, 0))
    np.testing.assert_array_equal(features, np.asarray(bag))
    with h5py.File(path, "r") as fh:
        a = dict(fh["coords"].attrs)
        assert fh["features"].attrs["encoder"] == bag.meta["backbone"]
        assert fh["coords"].dtype.kind == "i" and fh["features"].ndim == 2
    # TRIDENT: the level-0 square, and patch_size at the target magnification.
    assert a["patch_size_level0"] == round(geometry.extent) == 112
    assert a["patch_size"] * a["level0_magnification"] / a["target_magnification"] == (
        pytest.approx(geometry.extent)
    )
    assert read_bag(path).meta["extent"] == geometry.extent


def test_clam_patch_level_only_when_unambiguous():
    """Tiles resampled from level 0 (read_size != tile_size): CLAM's patch_size (at
    patch_level) and TRIDENT's (at the target magnification) differ; patch_level is then
    left out rather than written wrong."""
    a = coords_attrs(
        {
            "extent": 448.0,
            "tile_size": 224,
            "mpp": 0.5,
            "slide_mpp": 0.25,
            "level": 0,
            "read_size": 448,
        }
    )
    assert "patch_level" not in a and a["patch_size_level0"] == 448
    assert a["patch_size"] * a["level0_magnification"] / a["target_magnification"] == 448
    b = coords_attrs(
        {
            "extent": 448.0,
            "tile_size": 224,
            "mpp": 0.5,
            "slide_mpp": 0.25,
            "level": 1,
            "read_size": 224,
        }
    )
    assert b["patch_level"] == 1 and b["downsample"].tolist() == [2.0, 2.0]
    assert coords_attrs({}) == {}


def test_write_bag_roundtrip_keeps_geometry(tmp_path):
    path = write_bag(
        tmp_path / "s.h5",
        _features(),
        GRID * 448,
        attrs={
            "extent": 448.0,
            "tile_size": 224,
            "mpp": 0.5,
            "slide_mpp": 0.25,
            "level": 1,
            "read_size": 224,
            "slide_id": "s",
        },
    )
    bag = read_bag(path)
    assert bag.meta["extent"] == 448 and bag.meta["coords_patch_level"] == 1
    np.testing.assert_array_equal(bag.coords, GRID * 448)


def test_no_warning_for_pixel_files(tmp_path):
    path = write_trident(tmp_path / "a.h5", GRID * 512, _features())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_bag(path)


# -- issue 18: STAMP's historic files, and foreign files trusted too far -------------------
def _stamp_coords_um(path):
    """What STAMP's ``get_coords`` (stamp/modeling/data.py) makes of a file's coordinates:
    µm, with the tile side in µm; None where STAMP refuses the file."""
    with h5py.File(path, "r") as fh:
        coords, attrs = fh["coords"][:], dict(fh.attrs)
    if attrs.get("tile_size") and attrs.get("unit") == "um":
        return coords, float(attrs["tile_size"])
    if attrs.get("tile_size_um"):
        return coords, float(attrs["tile_size_um"])
    xs, ys = np.unique(coords[:, 0]), np.unique(coords[:, 1])
    stride = min(np.diff(xs).min(), np.diff(ys).min())
    if round(attrs.get("tile_size", stride)) == 224:
        return coords / 224 * 256, 256.0
    return None


def test_historic_stamp_files_are_read_as_stamp_reads_them(tmp_path):
    """Historic STAMP files (no 'unit') count 224-px tiles of 256 µm: read as µm, as STAMP
    reads them, not as level-0 pixels."""
    path = _stamp(tmp_path / "old.h5", GRID * 224.0 + 448, {})
    expected_um, tile_um = _stamp_coords_um(path)
    with pytest.warns(UserWarning, match="in µm"):
        bag = read_bag(path)
    assert bag.meta["coords_unit"] == "um" and bag.meta["stamp_historic"]
    np.testing.assert_allclose(bag.coords, expected_um)
    assert bag.meta["mpp"] == pytest.approx(256 / 224) and bag.meta["tile_size"] == 224
    with pytest.raises(ValueError, match="in µm"):
        tile_extent(bag)
    placed = read_bag(path, slide_mpp=0.5)  # with the slide's µm/px: level-0 pixels
    np.testing.assert_array_equal(placed.coords, np.rint(expected_um / 0.5))
    assert placed.meta["extent"] == tile_um / 0.5 == 512
    # a 'tile_size' attribute of 224 says the same; 'tile_size_um' alone means µm to STAMP
    path = _stamp(tmp_path / "attr.h5", GRID * 224.0, {"tile_size": 224})
    np.testing.assert_allclose(read_bag(path, slide_mpp=1.0).coords, GRID * 256)
    path = _stamp(tmp_path / "um.h5", GRID * 300.0, {"tile_size_um": 300.0})
    assert _stamp_coords_um(path)[1] == 300.0
    np.testing.assert_array_equal(read_bag(path, slide_mpp=0.5).coords, GRID * 600)
    # one tile: the grid cannot be told, so the coordinates are not placed on a slide
    bag = read_bag(_stamp(tmp_path / "one.h5", np.array([[448.0, 224.0]]), {}))
    with pytest.raises(ValueError, match="unknown unit.*historic"):
        tile_extent(bag)


def test_foreign_h5_with_groups_is_a_clear_error(tmp_path):
    for name in ("features", "coords"):
        path = tmp_path / f"group-{name}.h5"
        with h5py.File(path, "w") as fh:
            for key in ("features", "coords"):
                if key == name:
                    fh.create_group(key)["x"] = np.zeros(3)
                else:
                    fh[key] = _features(12) if key == "features" else GRID
        with pytest.raises(ValueError, match=rf"group-{name}\.h5': '{name}' is an HDF5 group"):
            read_bag(path)


def test_transposed_coords_are_refused(tmp_path):
    path = write_trident(tmp_path / "t.h5", (GRID * 512).T, _features())
    with pytest.raises(ValueError, match=r"t\.h5' has shape \(2, 12\).*transposed"):
        read_bag(path)
    torch.save({"features": torch.from_numpy(_features()), "coords": GRID.T}, tmp_path / "t.pt")
    with pytest.raises(ValueError, match=r"t\.pt' has shape \(2, 12\).*transposed"):
        read_bag(tmp_path / "t.pt")
    with h5py.File(tmp_path / "n.h5", "w") as fh:
        fh["features"], fh["coords"] = _features(), GRID[:10]
    with pytest.raises(ValueError, match=r"has shape \(10, 2\), expected \(12, 2\)"):
        read_bag(tmp_path / "n.h5")
