"""The on-disk feature store: one HDF5 file per slide, written atomically.

Each dataset this package writes carries a ``checksum`` attribute (SHA-256 of its values,
dtype and shape), verified when the file is read (``verify=True``), so a file edited or
damaged after it was written is refused instead of being used.
"""

from __future__ import annotations

import hashlib
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import h5py
import numpy as np

from .._io import atomic_write
from .._version import __version__
from ..bags import Bag
from ..exceptions import FeatureFileError
from ..slides import lookup_slide_mpp
from . import _interop

__all__ = ["BagWriter", "H5Array", "load_bags", "read_bag", "write_bag"]

#: Bumped when the layout of our files changes, so stale caches are never reused.
#: 2: per-dataset checksums and the featurization spec (``spec`` attribute).
FORMAT_VERSION = 2
_FEATURE_KEYS = ("features", "feats")
_CHECKSUM = "checksum"
_BLOCK_BYTES = 1 << 23


def _checksum(blocks, dtype, shape):
    h = hashlib.sha256(f"{np.dtype(dtype).str}{tuple(int(n) for n in shape)}".encode())
    for block in blocks:
        h.update(np.ascontiguousarray(block))
    return "sha256:" + h.hexdigest()


def _dataset_blocks(dset):
    """A dataset's values in row blocks of about 8 MiB (never all in memory)."""
    if dset.ndim == 0 or dset.shape[0] == 0:
        yield dset[()]
        return
    row_bytes = max(1, int(np.prod(dset.shape[1:], dtype=np.int64)) * dset.dtype.itemsize)
    step = max(1, _BLOCK_BYTES // row_bytes)
    for start in range(0, dset.shape[0], step):
        yield dset[start : start + step]


def dataset_checksum(dset):
    """SHA-256 of an HDF5 dataset's values, dtype and shape (read block by block)."""
    return _checksum(_dataset_blocks(dset), dset.dtype, dset.shape)


def _verify(dset, path, values=None):
    """Compare a dataset's stored checksum with its values (read now unless given)."""
    stored = dset.attrs.get(_CHECKSUM)
    if stored is None:  # other tools' files, or files of format 1
        return
    stored = stored.decode() if isinstance(stored, bytes) else str(stored)
    if values is None:
        actual = dataset_checksum(dset)
    else:
        actual = _checksum([values], dset.dtype, dset.shape)
    if actual != stored:
        raise FeatureFileError(
            f"Feature file '{path}': dataset '{dset.name.lstrip('/')}' does not match the "
            "checksum written with it (the file was changed or damaged after it was written). "
            "Delete it and rerun 'he2rna featurize' (or SlideFeaturizer) to recompute it."
        )


class H5Array:
    """A lazy 2-D dataset in an HDF5 file: ``shape`` without reading, values on conversion."""

    def __init__(self, path, key, shape, dtype):
        self.path = os.fspath(path)
        self.key = key
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    def __array__(self, dtype=None, copy=None):
        with h5py.File(self.path, "r") as fh:
            arr = fh[self.key][()]
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def read_into(self, out):
        """Read the whole dataset into ``out`` (an array of this shape) without a copy."""
        with h5py.File(self.path, "r") as fh:
            dset = fh[self.key]
            if dset.dtype == out.dtype and out.flags.c_contiguous:
                dset.read_direct(out)
            else:
                out[...] = dset[()]

    def __repr__(self):
        return f"H5Array('{self.path}', '{self.key}', shape={self.shape})"


class BagWriter:
    """Write one slide's feature file incrementally and atomically.

    The file is built under a temporary name and renamed into place on success (with
    :func:`he2rna_sklearn._io.atomic_write`), so a reader never sees a half-written file
    and an interrupted run leaves no file at ``path`` (the temporary is removed). Features
    can be written batch by batch with ``writer[start:stop] = features``, so a slide's
    features never need to be in memory all at once. On success, each dataset gets a
    ``checksum`` attribute that readers verify.

    Parameters
    ----------
    path : str or Path
    n_tiles, n_features : int
    coords : ndarray of shape (n_tiles, 2)
        Level-0 pixel (x, y) of each tile.
    attrs : dict, optional
        Scalars or strings stored as file attributes (mpp, tile_size, backbone, ...).
    """

    def __init__(self, path, n_tiles, n_features, coords, *, attrs=None):
        self.path = Path(path)
        self.shape = (int(n_tiles), int(n_features))
        self.coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        self.attrs = attrs or {}
        self._stack = None
        self._fh = None

    def __enter__(self):
        with ExitStack() as stack:
            self._tmp = stack.enter_context(atomic_write(self.path))
            self._fh = h5py.File(self._tmp, "w")
            stack.callback(self._fh.close)
            self._create()
            self._stack = stack.pop_all()
        return self

    def _create(self):
        chunks = (
            (max(1, min(self.shape[0], 256)), max(1, self.shape[1])) if all(self.shape) else None
        )
        self._features = self._fh.create_dataset(
            "features", shape=self.shape, dtype=np.float32, chunks=chunks
        )
        self._fh.create_dataset("coords", data=self.coords)
        self._fh.attrs["format"] = "he2rna-sklearn"
        self._fh.attrs["format_version"] = FORMAT_VERSION
        self._fh.attrs["package_version"] = __version__
        for key, value in self.attrs.items():
            if value is not None:
                self._fh.attrs[key] = value
        # The attributes CLAM and TRIDENT read, so that these files travel the other way.
        self._fh["coords"].attrs.update(_interop.coords_attrs(self.attrs))
        self._features.attrs.update(_interop.features_attrs(self.attrs))

    def __setitem__(self, index, values):
        self._features[index] = values

    def __exit__(self, exc_type, exc, tb):
        stack, self._stack = self._stack, None
        if exc_type is None:
            try:
                for dset in (self._features, self._fh["coords"]):
                    dset.attrs[_CHECKSUM] = dataset_checksum(dset)
            except BaseException:
                stack.__exit__(*sys.exc_info())  # close, remove the temporary
                raise
        return stack.__exit__(exc_type, exc, tb)


def write_bag(path, features, coords, *, attrs=None):
    """Write one slide's features atomically (see :class:`BagWriter`).

    Parameters
    ----------
    path : str or Path
    features : ndarray of shape (n_tiles, n_features)
    coords : ndarray of shape (n_tiles, 2)
        Level-0 pixel (x, y) of each tile.
    attrs : dict, optional
        Scalars or strings stored as file attributes (mpp, tile_size, backbone, ...).
    """
    features = np.asarray(features, dtype=np.float32)
    with BagWriter(path, *features.shape, coords, attrs=attrs) as writer:
        if features.size:
            writer[:] = features
    return Path(path)


def _attr_value(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_bag(path, *, lazy=False, verify=True, slide_mpp=None):
    """Read one feature file into a :class:`Bag`.

    Reads this package's files and the layouts of other tools: TRIDENT and CLAM
    (``features`` + ``coords``, with their tile geometry in ``meta["extent"]``), STAMP
    (``feats`` + ``coords`` in pixels or µm), files with ``features`` and per-tile
    ``metadata`` (tile names) but no coordinates, ``.pt`` feature files (CLAM, TRIDENT)
    and the official HE2RNA ``.npy`` tile features.

    Parameters
    ----------
    path : str or Path
    lazy : bool
        Keep features on disk and read them when the bag is converted with ``np.asarray``
        (for cohorts larger than memory; HDF5 only).
    verify : bool, default=True
        Check the values against the checksums this package writes with each dataset
        (files of other tools have none). With ``lazy=True`` this reads the features once,
        block by block.
    slide_mpp : float or dict, optional
        The slide's level-0 µm per pixel (or a mapping by the feature file's path, name or
        stem), to convert coordinates stored in µm (STAMP) to level-0 pixels.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    OSError
        If the file is not readable HDF5 (e.g. truncated).
    FeatureFileError
        If a dataset does not match its checksum (a ``ValueError``).
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise IsADirectoryError(f"Feature file '{path}' is a directory, not an HDF5 file.")
        raise FileNotFoundError(f"Feature file not found: '{path}'.")
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        return _interop.read_pt_features(path)
    if suffix == ".npy":
        return _interop.read_he2rna_npy(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise OSError(
            f"Cannot read feature file '{path}' as HDF5 (truncated or not HDF5?): {exc}"
        ) from exc
    try:
        with fh:
            return _read_open_bag(fh, path, lazy, verify, lookup_slide_mpp(slide_mpp, path))
    except OSError as exc:  # a dataset that cannot be read: the file is damaged
        raise OSError(f"Cannot read feature file '{path}' (truncated or damaged?): {exc}") from exc


def _dataset(fh, key, path):
    """``fh[key]`` if it is a dataset; a group (or a link to one) is a clear error."""
    obj = fh.get(key)
    if obj is None or isinstance(obj, h5py.Dataset):
        return obj
    raise FeatureFileError(
        f"Feature file '{path}': '{key}' is an HDF5 {type(obj).__name__.lower()}, not a "
        "dataset; the file is not in a layout this package reads (features (n, d) and "
        "coords (n, 2) as datasets, as TRIDENT, CLAM and STAMP write them)."
    )


def _read_open_bag(fh, path, lazy, verify, slide_mpp):
    key = next((k for k in _FEATURE_KEYS if k in fh), None)
    if key is None:
        raise ValueError(
            f"Feature file '{path}' has no 'features' or 'feats' dataset (found "
            f"{sorted(fh.keys())})."
        )
    dset = _dataset(fh, key, path)
    coords_dset = _dataset(fh, "coords", path)
    if dset.ndim == 3 and dset.shape[0] == 1:  # CLAM sometimes stores (1, n, d)
        features = dset[0]
    elif dset.ndim == 1 and dset.shape[0] == 0:  # TRIDENT's empty slide
        features = np.zeros((0, 0), dtype=np.float32)
    elif dset.ndim != 2:
        raise ValueError(f"'{key}' in '{path}' must be 2-D, got shape {dset.shape}.")
    elif lazy:
        if verify:
            _verify(dset, path)
        features = H5Array(path, key, dset.shape, dset.dtype)
    else:
        features = dset[()]
        if verify:
            _verify(dset, path, features)
        features = features.astype(np.float32, copy=False)
    coords = None if coords_dset is None else coords_dset[()]
    if coords is not None:
        if verify:
            _verify(coords_dset, path, coords)
        coords = _interop.check_coords(coords, features.shape[0], path)
    meta = {k: _attr_value(v) for k, v in fh.attrs.items()}
    if coords_dset is not None:
        meta.update(
            {f"coords_{k}": _attr_value(v) for k, v in coords_dset.attrs.items() if k != _CHECKSUM}
        )
    names = _dataset(fh, "metadata", path)
    if names is not None and coords is None:
        meta["tile_names"] = [_attr_value(v) for v in names[()]]
    coords, geometry = _interop.h5_geometry(
        path,
        fh.attrs,
        coords_dset.attrs if coords_dset is not None else {},
        coords,
        feature_key=key,
        slide_mpp=slide_mpp,
    )
    meta.update(geometry)
    slide_id = meta.get("slide_id")
    if slide_id is None:
        slide_id = path.parent.name if path.stem in _FEATURE_KEYS else path.stem
    meta["feature_file"] = os.fspath(path)
    return Bag(features, coords=coords, slide_id=slide_id, meta=meta)


def load_bags(paths, *, lazy=False, verify=True, slide_mpp=None):
    """Read feature files into a list of bags, in the order given.

    Parameters
    ----------
    paths : sequence of str or Path
        One file per slide: HDF5 (this package's, TRIDENT's, CLAM's or STAMP's), ``.pt``
        or HE2RNA ``.npy`` (see :func:`read_bag`).
    lazy : bool
        Keep features on disk until each bag is used.
    verify : bool, default=True
        Check every dataset against the checksum written with it (see :func:`read_bag`).
    slide_mpp : float or dict, optional
        Level-0 µm per pixel of the slides (a mapping by feature file path, name or stem),
        to convert coordinates stored in µm (STAMP) to pixels.

    Examples
    --------
    >>> from he2rna_sklearn import load_bags
    >>> bags = load_bags(["features/slide-1.h5"])  # doctest: +SKIP
    """
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError("load_bags expects a list of paths; wrap a single path in a list.")
    return [read_bag(p, lazy=lazy, verify=verify, slide_mpp=slide_mpp) for p in paths]
