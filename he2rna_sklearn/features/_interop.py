"""Feature files of other tools, both ways.

Read: TRIDENT and CLAM HDF5 files with their level-0 geometry, STAMP files whose
coordinates are in µm or pixels, ``.pt`` feature files (CLAM, TRIDENT) and the official
HE2RNA ``.npy`` tile features. Write: the coordinate attributes that CLAM and TRIDENT read,
so that this package's files travel the other way. Whole files in each tool's layout are
written by :mod:`._export` (``export_features``), and a folder of such files is indexed for
the ``he2rna`` command by :mod:`._build_index` (``build_index``).

Facts about the layouts come from the tools' public sources (mahmoodlab/CLAM,
mahmoodlab/TRIDENT, KatherLab/STAMP, owkin/HE2RNA_code); none of their code is used.

* TRIDENT: ``features`` (n, d) and ``coords`` (n, 2) level-0 pixels; the ``coords``
  attributes ``patch_size`` (pixels at ``target_magnification``), ``patch_size_level0``
  (the tile side at level 0), ``level0_magnification``, ``target_magnification``.
* CLAM: ``features`` and ``coords`` (level 0); patching files carry ``patch_level`` and
  ``patch_size`` (pixels at that level), sometimes ``downsample`` (the level's).
* STAMP: ``feats`` and ``coords``; ``unit="um"`` says the coordinates are in µm, with the
  tile side in ``tile_size_um`` (``tile_size`` in STAMP 2.0) and ``tile_size_px``. STAMP's
  reader (``get_coords`` in ``stamp/modeling/data.py``) takes, in order: ``tile_size`` with
  ``unit="um"`` (v2), ``tile_size_um`` (newer, whatever ``unit`` says), and else, when
  ``tile_size`` or the coordinate grid's stride rounds to 224, the historic format:
  coordinates in pixels of 224-px tiles of 256 µm (``coords / 224 * 256`` is µm). Other
  files it refuses.
* The folders: TRIDENT writes ``<job>/<mag>x_<size>px_<overlap>px_overlap/
  features_<encoder>/<slide>.h5`` (``<slide>`` is the slide file's name without its
  extension; ``<mag>`` an integer where it is one), with ``name``, ``savetodir`` and
  ``encoder`` on ``features``, and on ``coords`` also ``overlap``, ``level0_width`` and
  ``level0_height``. CLAM writes ``<feat_dir>/h5_files/<slide_id>.h5`` (``features``
  float32, ``coords`` int32, no attributes) and ``<feat_dir>/pt_files/<slide_id>.pt``
  (``torch.save`` of the features tensor), and lists slides in a CSV with ``case_id`` and
  ``slide_id``. STAMP writes ``<out>/<extractor>/<slide>.h5`` (``feats``, ``coords`` in µm
  of the tile's top-left corner; ``unit``, ``tile_size_um``, ``tile_size_px``,
  ``extractor``, ``feat_type="tile"``) and its slide table has ``PATIENT`` and ``FILENAME``
  (relative to the feature folder).
* HE2RNA (``extract_tile_features_from_slides.py``): one ``.npy`` per slide of shape
  (n, 3 + 2048): the OpenSlide DeepZoom level, column and row of 224-px tiles without
  overlap, then the ResNet50 features; all-zero rows are padding.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np

from ..bags import Bag

__all__ = [
    "check_coords",
    "coords_attrs",
    "features_attrs",
    "h5_geometry",
    "read_he2rna_npy",
    "read_pt_features",
]

#: DeepZoom tiling of the official HE2RNA code: 224-px tiles, no overlap.
HE2RNA_TILE = 224
#: STAMP's historic files (no ``unit``): 224-px tiles of 256 µm, coordinates in those pixels.
STAMP_HISTORIC_TILE_PX = 224
STAMP_HISTORIC_TILE_UM = 256.0


def check_coords(coords, n_tiles, path):
    """Tile coordinates as an (n_tiles, 2) array, or a one-line error naming the file.

    Coordinates stored transposed, (2, n_tiles), are refused rather than reshaped: a
    reshape would silently pair each x with another tile's x.
    """
    coords = np.asarray(coords)
    if coords.ndim == 3 and coords.shape[0] == 1:  # a batch of one, as features may be
        coords = coords[0]
    if coords.ndim == 2 and coords.shape == (n_tiles, 2):
        return coords
    if coords.size == 0 and n_tiles == 0:
        return coords.reshape(0, 2)
    if coords.ndim == 2 and coords.shape == (2, n_tiles):
        raise ValueError(
            f"'coords' in '{path}' has shape {coords.shape}: the coordinates are stored "
            f"transposed (2 x n); expected ({n_tiles}, 2), one (x, y) row per tile. Rewrite "
            "the file with coords.T."
        )
    raise ValueError(
        f"'coords' in '{path}' has shape {coords.shape}, expected ({n_tiles}, 2): one (x, y) "
        f"row per tile of its {n_tiles} feature rows."
    )


# -- reading HDF5 geometry ------------------------------------------------------------------
def _scalar(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _grid_step(coords):
    if coords is None or len(coords) < 2:
        return None
    steps = np.concatenate(
        [np.diff(np.unique(coords[:, 0])), np.diff(np.unique(coords[:, 1]))]
    ).astype(np.float64)
    steps = steps[steps > 0]
    return float(steps.min()) if len(steps) else None


def h5_geometry(path, file_attrs, coords_attrs, coords, *, feature_key="features", slide_mpp=None):
    """Level-0 coordinates and tile extent of another tool's HDF5 feature file.

    Parameters
    ----------
    path : str or Path
        The file (named in warnings).
    file_attrs, coords_attrs : dict
        Attributes of the file and of its ``coords`` dataset.
    coords : ndarray of shape (n, 2) or None
    feature_key : str
        The features dataset's name (``"feats"`` is STAMP's).
    slide_mpp : float, optional
        The slide's level-0 µm per pixel, to convert µm coordinates (STAMP) to pixels.

    Returns
    -------
    coords : ndarray or None
        Level-0 pixels, or µm when the file is in µm and ``slide_mpp`` is unknown.
    meta : dict
        ``extent`` (tile side, level-0 px), ``source_format``, ``coords_unit`` and what
        else the file tells (``tile_size``, ``mpp``, ``magnification``).
    """
    fa = {k: _scalar(v) for k, v in file_attrs.items()}
    ca = {k: _scalar(v) for k, v in coords_attrs.items()}
    meta = {}
    if fa.get("format") == "he2rna-sklearn":
        return coords, meta
    unit = str(fa.get("unit", ca.get("unit", "px"))).lower()
    if unit in ("um", "µm", "micron", "microns") or (
        feature_key == "feats" and "tile_size_um" in fa
    ):
        return _stamp_um(path, fa, coords, slide_mpp, meta)
    if feature_key == "feats" and "unit" not in fa and "unit" not in ca:
        historic = _stamp_historic(path, fa, coords)
        if historic == "unknown":
            meta["source_format"] = "stamp"
            meta["coords_unit"] = "stamp-unknown"
            return coords, meta
        if historic is not None:
            coords, fa = historic
            meta["stamp_historic"] = True
            return _stamp_um(path, fa, coords, slide_mpp, meta)
    if "patch_size_level0" in ca:  # TRIDENT
        meta["source_format"] = "trident"
        meta["extent"] = float(ca["patch_size_level0"])
        if "patch_size" in ca:
            meta["tile_size"] = int(ca["patch_size"])
        if ca.get("target_magnification"):
            meta["magnification"] = float(ca["target_magnification"])
        if ca.get("level0_magnification"):
            meta["level0_magnification"] = float(ca["level0_magnification"])
    elif "patch_level" in ca and "patch_size" in ca:  # CLAM
        meta["source_format"] = "clam"
        size = float(ca["patch_size"]) * float(ca.get("custom_downsample", 1) or 1)
        level = int(ca["patch_level"])
        downsample = ca.get("downsample")
        if downsample is not None and np.size(downsample) >= 1:
            meta["extent"] = size * float(np.ravel(downsample)[0])
        elif level == 0:
            meta["extent"] = size
        else:
            step = _grid_step(coords)
            if step is not None:
                meta["extent"] = step
                meta["extent_from"] = "coords grid"
    elif feature_key == "feats":  # STAMP in pixels
        meta["source_format"] = "stamp"
    if "tile_size_px" in fa:
        meta.setdefault("tile_size", int(fa["tile_size_px"]))
    meta["coords_unit"] = "px"
    return coords, meta


def _stamp_historic(path, fa, coords):
    """A historic STAMP file (no ``unit``) as STAMP reads it: µm coordinates and the tile's
    facts; "unknown" when its stride cannot be told (one tile row and column); or None
    when it is not one (its coordinates are then taken as pixels)."""
    stride = fa.get("tile_size")
    if stride is None:
        stride = _grid_step(None if coords is None else np.asarray(coords, dtype=np.float64))
    if stride is None:
        return None if coords is None or len(coords) == 0 else "unknown"
    if round(float(stride)) != STAMP_HISTORIC_TILE_PX:
        return None
    scale = STAMP_HISTORIC_TILE_UM / STAMP_HISTORIC_TILE_PX
    coords = None if coords is None else np.asarray(coords, dtype=np.float64) * scale
    fa = {
        **fa,
        "unit": "um",
        "tile_size_um": STAMP_HISTORIC_TILE_UM,
        "tile_size_px": STAMP_HISTORIC_TILE_PX,
    }
    return coords, fa


def _stamp_um(path, fa, coords, slide_mpp, meta):
    meta["source_format"] = "stamp"
    tile_um = fa.get("tile_size_um", fa.get("tile_size"))
    tile_um = float(tile_um) if tile_um is not None else None
    if tile_um and fa.get("tile_size_px"):
        meta["tile_size"] = int(fa["tile_size_px"])
        meta["mpp"] = tile_um / float(fa["tile_size_px"])
    if coords is None:
        return coords, meta
    if slide_mpp is None:
        warnings.warn(
            f"The coordinates in '{path}' are in µm (STAMP) and the slide's µm per pixel is "
            "unknown, so they stay in µm (bag.meta['coords_unit'] == 'um'): fine for "
            "super-tiles, refused by heatmaps and exports. Pass slide_mpp= to "
            "read_bag/load_bags to get level-0 pixels.",
            UserWarning,
            stacklevel=4,
        )
        meta["coords_unit"] = "um"
        if tile_um:
            meta["extent_um"] = tile_um
        return np.asarray(coords, dtype=np.float64), meta
    slide_mpp = float(slide_mpp)
    if not slide_mpp > 0:
        raise ValueError(f"slide_mpp for '{path}' must be positive, got {slide_mpp}.")
    meta["coords_unit"] = "px"
    meta["slide_mpp"] = slide_mpp
    if tile_um:
        meta["extent"] = tile_um / slide_mpp
    return np.rint(np.asarray(coords, dtype=np.float64) / slide_mpp).astype(np.int64), meta


# -- writing the attributes CLAM and TRIDENT read --------------------------------------------
def coords_attrs(attrs):
    """Attributes of the ``coords`` dataset that CLAM and TRIDENT read, from a bag's facts.

    From ``extent`` (tile side, level-0 px), ``tile_size`` (px at ``mpp``), ``mpp``,
    ``slide_mpp``, ``level`` and ``read_size`` (side read at ``level``), whichever are
    known:

    * TRIDENT: ``patch_size_level0`` (= extent), ``patch_size`` (= tile_size),
      ``target_magnification`` (10 / mpp) and ``level0_magnification`` (10 / slide_mpp).
    * CLAM: ``patch_level`` and ``patch_size`` so that ``read_region(coord, patch_level,
      (patch_size, patch_size))`` covers the tile. CLAM's ``patch_size`` is in pixels of
      ``patch_level`` while TRIDENT's is at the target magnification; they agree when the
      tile was read without resampling (``read_size == tile_size``). Otherwise
      ``patch_level`` is left out, so that CLAM stops with an error instead of reading
      regions of the wrong size.

    Examples
    --------
    >>> from he2rna_sklearn.features._interop import coords_attrs
    >>> a = coords_attrs({"extent": 448.0, "tile_size": 224, "mpp": 0.5, "slide_mpp": 0.25,
    ...                   "level": 1, "read_size": 224})
    >>> a["patch_size_level0"], a["patch_size"], a["patch_level"], a["target_magnification"]
    (448, 224, 1, 20.0)
    """
    out = {}
    extent = attrs.get("extent")
    tile = attrs.get("tile_size")
    if extent:
        out["patch_size_level0"] = int(round(float(extent)))
    if tile:
        out["patch_size"] = int(tile)
    if attrs.get("mpp"):
        out["target_magnification"] = 10.0 / float(attrs["mpp"])
    if attrs.get("slide_mpp"):
        out["level0_magnification"] = 10.0 / float(attrs["slide_mpp"])
    if extent and tile:
        read_size = attrs.get("read_size")
        level = attrs.get("level")
        if level is not None and read_size is not None and int(read_size) == int(tile):
            out["patch_level"] = int(level)
            out["downsample"] = np.array([float(extent) / int(tile)] * 2)
        elif math.isclose(float(extent), float(tile)):
            out["patch_level"] = 0
            out["downsample"] = np.array([1.0, 1.0])
    if attrs.get("slide_id") is not None:
        out["name"] = str(attrs["slide_id"])
    return out


def features_attrs(attrs):
    """Attributes of the ``features`` dataset as TRIDENT writes them (``name``, ``encoder``)."""
    out = {}
    if attrs.get("slide_id") is not None:
        out["name"] = str(attrs["slide_id"])
    if attrs.get("backbone") is not None:
        out["encoder"] = str(attrs["backbone"])
    return out


# -- .pt and .npy ---------------------------------------------------------------------------
def _numpy_safe_globals():
    """What ``torch.load(weights_only=True)`` needs to rebuild a pickled numpy array."""
    globs = [np.ndarray, np.dtype, bytes]
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import _reconstruct
    globs += [_reconstruct, (_reconstruct, "numpy.core.multiarray._reconstruct")]
    for t in (np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_):
        globs.append(type(np.dtype(t)))
    return globs


def read_pt_features(path, *, slide_id=None):
    """Read a ``.pt`` feature file (CLAM, TRIDENT) into a :class:`Bag`.

    The file is read with ``torch.load(weights_only=True)``: it may hold a tensor or a
    numpy array of shape (n, d) or (1, n, d), or a dict with ``features``/``feats`` and
    optionally ``coords``. Nothing else is unpickled.

    Examples
    --------
    >>> from he2rna_sklearn.features._interop import read_pt_features
    >>> bag = read_pt_features("pt_files/TCGA-AA-3489.pt")  # doctest: +SKIP
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Feature file not found: '{path}'.")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"Cannot read '{path}' as a .pt feature file with torch.load(weights_only=True): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    coords = None
    if isinstance(obj, dict):
        key = next((k for k in ("features", "feats") if k in obj), None)
        if key is None:
            raise ValueError(
                f"'{path}' holds a dict without 'features' or 'feats' (keys: {sorted(obj)[:10]})."
            )
        coords = obj.get("coords")
        obj = obj[key]
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().float().cpu().numpy()
    if not isinstance(obj, np.ndarray):
        raise ValueError(
            f"'{path}' holds a {type(obj).__name__}, not a feature array (tensor or ndarray)."
        )
    features = np.asarray(obj, dtype=np.float32)
    if features.ndim == 3 and features.shape[0] == 1:
        features = features[0]
    if features.ndim == 1 and features.size == 0:  # an empty slide (TRIDENT)
        features = features.reshape(0, 0)
    if features.ndim != 2:
        raise ValueError(f"Features in '{path}' must be 2-D (n, d), got shape {features.shape}.")
    if coords is not None:
        if isinstance(coords, torch.Tensor):
            coords = coords.cpu().numpy()
        coords = check_coords(coords, features.shape[0], path)
    meta = {"source_format": "pt", "feature_file": os.fspath(path)}
    return Bag(features, coords=coords, slide_id=slide_id or path.stem, meta=meta)


def read_he2rna_npy(path, *, slide_dimensions=None, slide_id=None):
    """Read the official HE2RNA code's tile features (``.npy``, 3 + 2048 columns).

    Each row is ``(DeepZoom level, column, row, features...)`` of a 224-px tile of
    OpenSlide's ``DeepZoomGenerator(tile_size=224, overlap=0)``; all-zero rows are padding
    and are dropped.

    Parameters
    ----------
    path : str or Path
    slide_dimensions : (int, int), optional
        The slide's level-0 (width, height). With it, coordinates and ``extent`` are level-0
        pixels; without it they are pixels of the DeepZoom level (``meta["coords_unit"] ==
        "deepzoom_px"``), which suits super-tiles but not a slide thumbnail.
    slide_id : str, optional
        Default: the file stem.

    Examples
    --------
    >>> from he2rna_sklearn.features import read_he2rna_npy
    >>> bag = read_he2rna_npy("0.50_mpp/TCGA-AA-3489.npy",
    ...                       slide_dimensions=(95615, 75408))  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Feature file not found: '{path}'.")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"Cannot read '{path}' as a numeric .npy array: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] < 4:
        raise ValueError(
            f"'{path}' is not HE2RNA tile features: expected shape (n_tiles, 3 + n_features) "
            f"(level, column, row, features), got {arr.shape}."
        )
    arr = arr[np.any(arr != 0, axis=1)]
    levels = np.unique(arr[:, 0])
    if len(levels) > 1:
        raise ValueError(f"'{path}' mixes DeepZoom levels {levels[:5].tolist()}; expected one.")
    if len(levels) and (levels[0] <= 0 or levels[0] != np.round(levels[0])):
        raise ValueError(f"'{path}': column 0 must be a positive DeepZoom level, got {levels[0]}.")
    level = int(levels[0]) if len(levels) else None
    grid = arr[:, 1:3]
    if np.any(grid < 0) or np.any(grid != np.round(grid)):
        raise ValueError(f"'{path}': columns 1-2 must be non-negative tile indices.")
    features = np.ascontiguousarray(arr[:, 3:], dtype=np.float32)
    meta = {"source_format": "he2rna-npy", "feature_file": os.fspath(path), "tile_size": 224}
    if level is not None:
        meta["deepzoom_level"] = level
    scale = 1.0
    if slide_dimensions is not None:
        w, h = (int(v) for v in slide_dimensions)
        max_level = math.ceil(math.log2(max(w, h))) if max(w, h) > 1 else 0
        if level is not None and level > max_level:
            raise ValueError(
                f"'{path}' uses DeepZoom level {level} but a {w} x {h} slide has levels "
                f"0..{max_level}: wrong slide_dimensions?"
            )
        scale = 2.0 ** (max_level - level) if level is not None else 1.0
        meta["coords_unit"] = "px"
    else:
        meta["coords_unit"] = "deepzoom_px"
    coords = np.rint(grid * HE2RNA_TILE * scale).astype(np.int64)
    meta["extent"] = HE2RNA_TILE * scale
    return Bag(features, coords=coords, slide_id=slide_id or path.stem, meta=meta)
