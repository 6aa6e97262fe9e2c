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


# A FeatureCollection as QuPath (>= 0.4) exports annotations: a UUID ``id`` per feature,
# ``objectType``, and a ``classification`` written by GsonTools.PathClassTypeAdapter: a single
# class as ``{"name", "color"}``, a derived one as ``{"names": [...], "color"}``; measurements
# may hold NaN (QuPath writes it bare). QuPath shows a derived class by joining its names with
# PathClass.DELIMITER and a space: "Tumor: Positive"; PathClass.fromString splits on ":" and
# strips, so "Tumor:Positive" names the same class.
QUPATH_EXPORT = """{
  "type": "FeatureCollection",
  "features": [
    {
      "type": "Feature",
      "id": "6f1f1bd4-7f0a-4c1e-9a43-1c2b0f3e9d11",
      "geometry": {
        "type": "Polygon",
        "coordinates": [[[0, 0], [400, 0], [400, 400], [0, 400], [0, 0]]]
      },
      "properties": {
        "objectType": "annotation",
        "classification": {"names": ["Tumor", "Positive"], "color": [200, 50, 50]},
        "measurements": {"Num Detections": 12, "Area µm^2": NaN}
      }
    },
    {
      "type": "Feature",
      "id": "0d9e2f33-5a51-4b7e-8f0e-2a6c3c1d4b22",
      "geometry": {
        "type": "Polygon",
        "coordinates": [[[500, 0], [900, 0], [900, 400], [500, 400], [500, 0]]]
      },
      "properties": {
        "objectType": "annotation",
        "classification": {"name": "Stroma", "color": [150, 200, 150]},
        "isLocked": true
      }
    },
    {
      "type": "Feature",
      "id": "9b7c4e55-2d3f-4a6b-8c1d-3e4f5a6b7c33",
      "geometry": {
        "type": "Polygon",
        "coordinates": [[[0, 500], [400, 500], [400, 900], [0, 900], [0, 500]]]
      },
      "properties": {
        "objectType": "annotation",
        "classification": {"names": ["Tumor", "Negative", "1+"], "color": [255, 215, 0]}
      }
    }
  ]
}"""


def test_qupath_derived_classes_are_named_as_qupath_shows_them(tmp_path):
    path = tmp_path / "qupath_export.geojson"
    path.write_text(QUPATH_EXPORT, encoding="utf-8")
    classes = [cls for _, cls in read_geojson_polygons(path)]
    assert classes == ["Tumor: Positive", "Stroma", "Tumor: Negative: 1+"]
    mask = geojson_tissue_mask(path, (1000, 1000), max_size=100, classes=["Tumor: Positive"])
    assert mask[20, 20] and not mask[20, 70] and not mask[70, 20]
    # QuPath's own spelling rules: ":" with or without spaces names the same class.
    same = geojson_tissue_mask(path, (1000, 1000), max_size=100, classes=["Tumor:Positive"])
    np.testing.assert_array_equal(mask, same)
    rest = geojson_tissue_mask(path, (1000, 1000), max_size=100, exclude=["Tumor : Positive"])
    assert not rest[20, 20] and rest[20, 70] and rest[70, 20]
    with pytest.raises(ValueError, match=r"classes found: \['Stroma', 'Tumor: Negative: 1\+'"):
        geojson_tissue_mask(path, (1000, 1000), classes=["Tumor"])


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
