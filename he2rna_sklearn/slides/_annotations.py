"""Tissue masks from GeoJSON annotations (QuPath, GrandQC, TRIDENT), in level-0 pixels."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["GEOJSON_SUFFIXES", "geojson_tissue_mask", "read_geojson_polygons"]

#: File suffixes read as GeoJSON annotations (other mask files are read as images).
GEOJSON_SUFFIXES = (".geojson", ".json")


#: QuPath's PathClass.DELIMITER: a derived class ``names: ["Tumor", "Positive"]`` shows as
#: "Tumor: Positive" (the names joined by the delimiter and a space), and
#: PathClass.fromString splits a name on the delimiter and strips each part.
_QUPATH_DELIMITER = ":"


def _qupath_class_name(name):
    """A class name as QuPath shows it: derived names joined by ``": "``, parts stripped.

    ``"Tumor:Positive"``, ``"Tumor : Positive"`` and ``["Tumor", "Positive"]`` (QuPath's
    GeoJSON ``classification.names``) all give ``"Tumor: Positive"``; None stays None.
    """
    if name is None:
        return None
    parts = name if isinstance(name, (list, tuple)) else str(name).split(_QUPATH_DELIMITER)
    parts = [str(p).strip() for p in parts]
    return f"{_QUPATH_DELIMITER} ".join(p for p in parts if p)


def _class_name(properties):
    """The class of a feature as QuPath, GrandQC and others write it, or None."""
    if not isinstance(properties, dict):
        return None
    cls = properties.get("classification")
    if isinstance(cls, dict):
        cls = cls.get("name") or cls.get("names")
    if cls is None:
        cls = properties.get("class", properties.get("label"))
    return _qupath_class_name(cls)


def _polygons_of(geometry, source):
    kind = geometry.get("type") if isinstance(geometry, dict) else None
    if kind == "Polygon":
        return [geometry.get("coordinates") or []]
    if kind == "MultiPolygon":
        return list(geometry.get("coordinates") or [])
    if kind == "GeometryCollection":
        return [p for g in geometry.get("geometries", []) for p in _polygons_of(g, source)]
    if kind in ("Point", "MultiPoint", "LineString", "MultiLineString"):
        return []  # no area: not a mask
    raise ValueError(f"Unknown GeoJSON geometry type {kind!r} in {source}.")


def _features_of(data, source):
    if isinstance(data, list):
        return [f for item in data for f in _features_of(item, source)]
    if not isinstance(data, dict):
        raise ValueError(f"{source} is not GeoJSON (a FeatureCollection, Feature or geometry).")
    kind = data.get("type")
    if kind == "FeatureCollection":
        return list(data.get("features") or [])
    if kind == "Feature":
        return [data]
    if kind in ("Polygon", "MultiPolygon", "GeometryCollection"):
        return [{"type": "Feature", "geometry": data, "properties": {}}]
    raise ValueError(f"{source}: unknown GeoJSON object type {kind!r}.")


def read_geojson_polygons(source):
    """Polygons of a GeoJSON file, with the class of each.

    Parameters
    ----------
    source : str, Path or dict
        A GeoJSON file (a FeatureCollection, a list of Features as QuPath exports them, a
        Feature or a bare geometry), or the parsed object.

    Returns
    -------
    polygons : list of (list of ndarray, str or None)
        Each polygon's rings (exterior first, then holes) as (n, 2) float arrays of (x, y)
        level-0 pixels, and its class name (QuPath's ``classification.name``) if any. A
        derived QuPath class (``classification.names``, e.g. ``["Tumor", "Positive"]``) is
        named as QuPath shows it, ``"Tumor: Positive"``. Points and lines are ignored.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"GeoJSON file not found: '{path}'.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"'{path}' is not valid JSON: {exc}") from exc
        label = f"'{path}'"
    else:
        data, label = source, "the GeoJSON object"
    out = []
    for feature in _features_of(data, label):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if geometry is None:
            continue
        cls = _class_name(feature.get("properties"))
        for rings in _polygons_of(geometry, label):
            arrays = []
            for ring in rings:
                arr = np.asarray(ring, dtype=np.float64)
                if arr.ndim != 2 or arr.shape[1] < 2:
                    raise ValueError(f"A polygon ring in {label} is not a list of [x, y].")
                arrays.append(arr[:, :2])
            if arrays and len(arrays[0]) >= 3:
                out.append((arrays, cls))
    return out


def _rasterize(polygons, shape, scale):
    """Fill polygons (with holes) into a bool mask of ``shape`` with PIL."""
    from PIL import Image, ImageDraw

    h, w = shape
    mask = np.zeros(shape, dtype=bool)
    for rings in polygons:
        # PIL fills a polygon with its boundary pixels: exact to within one mask pixel.
        pts = [ring * scale for ring in rings]
        x0, y0 = np.floor(pts[0].min(axis=0)).astype(int)
        x1, y1 = np.ceil(pts[0].max(axis=0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        canvas = Image.new("1", (x1 - x0, y1 - y0), 0)
        draw = ImageDraw.Draw(canvas)
        for i, ring in enumerate(pts):
            xy = [(float(x) - x0, float(y) - y0) for x, y in ring]
            draw.polygon(xy, fill=0 if i else 1)
        mask[y0:y1, x0:x1] |= np.asarray(canvas, dtype=bool)
    return mask


def geojson_tissue_mask(source, dimensions, *, max_size=4096, classes=None, exclude=None):
    """Rasterise GeoJSON tissue polygons into a mask covering the whole slide.

    Tissue annotations from QuPath, GrandQC or TRIDENT (polygons in level-0 pixels) become a
    boolean mask that :class:`~he2rna_sklearn.SlideFeaturizer` accepts as a tissue mask.
    Holes are left out, and polygons of ``exclude`` classes (artefacts, pen marks) are
    subtracted. Edges are exact to within one mask pixel.

    Parameters
    ----------
    source : str, Path or dict
        A GeoJSON file or object (see :func:`read_geojson_polygons`).
    dimensions : (int, int)
        The slide's level-0 (width, height).
    max_size : int, default=4096
        The mask's longer side; the mask keeps the slide's aspect ratio.
    classes : collection of str, optional
        Keep only polygons of these classes (default: every polygon not excluded). Derived
        QuPath classes are written as QuPath shows them, ``"Tumor: Positive"``; as in
        QuPath, spaces around ``:`` do not matter.
    exclude : collection of str, optional
        Subtract polygons of these classes (named as for ``classes``).

    Returns
    -------
    mask : ndarray of shape (h, w), bool

    Examples
    --------
    >>> from he2rna_sklearn.slides import geojson_tissue_mask
    >>> square = {"type": "Polygon", "coordinates": [[[0, 0], [500, 0], [500, 500], [0, 500]]]}
    >>> mask = geojson_tissue_mask(square, (1000, 1000), max_size=100)
    >>> mask.shape, round(float(mask.mean()), 2)
    ((100, 100), 0.26)
    """
    w, h = (int(v) for v in dimensions)
    if w <= 0 or h <= 0:
        raise ValueError(f"dimensions must be a positive (width, height), got {dimensions}.")
    polygons = read_geojson_polygons(source)
    classes = None if classes is None else {_qupath_class_name(c) for c in classes}
    exclude = {_qupath_class_name(c) for c in (exclude or ())}
    keep = [r for r, c in polygons if c not in exclude and (classes is None or c in classes)]
    drop = [r for r, c in polygons if c in exclude]
    if not keep:
        found = sorted({str(c) for _, c in polygons})
        raise ValueError(
            f"No tissue polygon in the GeoJSON {source if not isinstance(source, dict) else ''}"
            f" (classes={sorted(classes) if classes else None}, exclude={sorted(exclude)}; "
            f"classes found: {found})."
        )
    factor = min(1.0, max_size / max(w, h))
    shape = (max(1, round(h * factor)), max(1, round(w * factor)))
    scale = np.array([shape[1] / w, shape[0] / h])
    mask = _rasterize(keep, shape, scale)
    if drop:
        mask &= ~_rasterize(drop, shape, scale)
    return mask
