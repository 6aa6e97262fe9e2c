"""GeoJSON tissue masks (QuPath, GrandQC, TRIDENT): reading, rasterising, featurizing."""

import json

import numpy as np
import pytest

from he2rna_sklearn import SlideFeaturizer
from he2rna_sklearn.slides import SlideReader, geojson_tissue_mask, read_geojson_polygons

from ..conftest import CMU_SVS


def _square(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def _feature(rings, cls=None, kind="Polygon"):
    props = {"objectType": "annotation"}
    if cls is not None:
        props["classification"] = {"name": cls, "color": [255, 0, 0]}
    coords = rings if kind == "Polygon" else [rings]
    return {
        "type": "Feature",
        "geometry": {"type": kind, "coordinates": coords},
        "properties": props,
    }


def test_qupath_collection_with_holes_and_excluded_artefacts(tmp_path):
    """Slide 1000 x 800 px, mask 100 x 80: one tissue square with a hole, one artefact."""
    collection = {
        "type": "FeatureCollection",
        "features": [
            _feature([_square(100, 200, 400, 500), _square(200, 300, 300, 400)], "Tissue"),
            _feature([_square(600, 100, 900, 700)], "Tissue", kind="MultiPolygon"),
            _feature([_square(700, 200, 800, 300)], "Pen marking"),
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}},
        ],
    }
    path = tmp_path / "slide.geojson"
    path.write_text(json.dumps(collection))
    mask = geojson_tissue_mask(path, (1000, 800), max_size=100, exclude=["Pen marking"])
    assert mask.shape == (80, 100)
    assert mask[35, 15] and mask[25, 35]  # inside the first square (row y/10, col x/10)
    assert not mask[35, 25]  # its hole
    assert mask[50, 75] and not mask[25, 75]  # second square, minus the pen mark
    assert not mask[10, 50] and not mask[60, 50]  # outside everything
    expected = 31 * 31 - 9 * 9 + 31 * 61 - 9 * 9  # PIL fills boundary pixels
    assert abs(int(mask.sum()) - expected) <= 4 * 31
    only_pen = geojson_tissue_mask(path, (1000, 800), max_size=100, classes=["Pen marking"])
    assert only_pen[25, 75] and only_pen.sum() < mask.sum()


def test_other_shapes_of_geojson():
    sq = {"type": "Polygon", "coordinates": [_square(0, 0, 500, 500)]}
    as_list = [{"type": "Feature", "geometry": sq, "properties": {"classification": "Tumor"}}]
    polys = read_geojson_polygons(as_list)
    assert len(polys) == 1 and polys[0][1] == "Tumor" and polys[0][0][0].shape == (5, 2)
    m = geojson_tissue_mask(sq, (1000, 1000), max_size=100)
    assert m[:50, :50].all() and not m[52:, :].any() and not m[:, 52:].any()
    big = geojson_tissue_mask(sq, (1000, 1000), max_size=5000)
    assert big.shape == (1000, 1000)  # never finer than level 0


def test_geojson_errors(tmp_path):
    (tmp_path / "bad.geojson").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.geojson.*not valid JSON"):
        geojson_tissue_mask(tmp_path / "bad.geojson", (10, 10))
    with pytest.raises(FileNotFoundError, match="missing.geojson"):
        geojson_tissue_mask(tmp_path / "missing.geojson", (10, 10))
    with pytest.raises(ValueError, match="unknown GeoJSON object type 'Mask'"):
        geojson_tissue_mask({"type": "Mask"}, (10, 10))
    other = {"type": "FeatureCollection", "features": [_feature([_square(0, 0, 5, 5)], "A")]}
    with pytest.raises(ValueError, match=r"No tissue polygon.*classes found: \['A'\]"):
        geojson_tissue_mask(other, (10, 10), classes=["Tissue"])
    with pytest.raises(ValueError, match=r"not a list of \[x, y\]"):
        geojson_tissue_mask({"type": "Polygon", "coordinates": [[1, 2, 3]]}, (10, 10))
    with pytest.raises(ValueError, match="positive"):
        geojson_tissue_mask(other, (0, 10))


def test_featurizer_takes_geojson_masks(tiny_cnn, tmp_path):
    """Tissue drawn on the left half of the slide: tiles come from there only, as with the
    same mask given as an array."""
    with SlideReader(CMU_SVS) as reader:
        w, h = reader.dimensions
    half = {"type": "Polygon", "coordinates": [_square(0, 0, w // 2, h)]}
    path = tmp_path / "cmu.geojson"
    path.write_text(json.dumps(half))
    common = dict(
        backbone=tiny_cnn,
        weights=None,
        mpp=1.0,
        tile_size=112,
        max_tiles=None,
        precision="fp32",  # the module is reused: bf16 would cast it in place
        progress=False,
    )
    [bag] = SlideFeaturizer(tissue_masks={CMU_SVS.name: path}, **common).fit_transform([CMU_SVS])
    extent = bag.meta["extent"]
    assert bag.n_tiles > 10
    assert (bag.coords[:, 0] + extent <= w // 2 + extent / 2).all()
    array = np.zeros((h // 10, w // 10), dtype=bool)
    array[:, : w // 20] = True
    [ref] = SlideFeaturizer(tissue_masks={CMU_SVS.name: array}, **common).fit_transform([CMU_SVS])
    np.testing.assert_array_equal(bag.coords, ref.coords)
