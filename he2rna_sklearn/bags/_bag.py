"""The bag: the tile features of one slide, with where each tile lies."""

from __future__ import annotations

import numpy as np

__all__ = ["Bag"]


class Bag:
    """The tile features of one slide.

    A bag behaves as a 2-D array: ``np.asarray(bag)`` gives its ``(n_tiles, n_features)``
    float32 features. It also carries where each tile lies, so that tile-level predictions
    can be painted back on the slide. The public bag container of this package is any
    sequence of bags or 2-D arrays (a list is best: scikit-learn's CV splitters index it).

    Parameters
    ----------
    features : array-like of shape (n_tiles, n_features)
        Tile features, or a lazy array (anything with ``shape`` and ``__array__``) that
        is read from disk only when converted.
    coords : array-like of shape (n_tiles, 2), optional
        Level-0 pixel (x, y) of each tile's top-left corner (unless ``meta["coords_unit"]``
        says otherwise).
    slide_id : str, optional
        An identifier of the slide, used in messages and outputs.
    meta : dict, optional
        Tiling facts: ``mpp``, ``tile_size`` (px at ``mpp``), ``extent`` (tile side in
        level-0 px), ``backbone``, ``weights``, ``slide_path``, and ``coords_unit`` for
        feature files of other tools: ``"px"`` (level-0 pixels, also when absent), ``"um"``
        or ``"deepzoom_px"``, which :mod:`~he2rna_sklearn.spatial` refuses to place on the
        slide (see :func:`~he2rna_sklearn.features.read_bag`).
    assignment : array-like of shape (n_source_tiles,), optional
        For a bag of super-tiles: the row of ``features`` that each source tile belongs to.
    tile_coords : array-like of shape (n_source_tiles, 2), optional
        For a bag of super-tiles: the level-0 coordinates of the source tiles.

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn import Bag
    >>> bag = Bag(np.ones((3, 4)), coords=[[0, 0], [224, 0], [0, 224]], slide_id="s1")
    >>> bag
    Bag(slide_id='s1', n_tiles=3, n_features=4)
    >>> np.asarray(bag).dtype
    dtype('float32')
    """

    def __init__(
        self, features, coords=None, slide_id=None, *, meta=None, assignment=None, tile_coords=None
    ):
        if not (hasattr(features, "shape") and hasattr(features, "__array__")):
            features = np.asarray(features, dtype=np.float32)
        if len(features.shape) != 2:
            raise ValueError(
                f"Bag features must be 2-D (n_tiles, n_features), got shape {features.shape}"
                + (f" for slide '{slide_id}'." if slide_id is not None else ".")
            )
        self.features = features
        n = features.shape[0]
        if coords is not None:
            coords = np.asarray(coords)
            if coords.shape != (n, 2):
                raise ValueError(
                    f"coords must have shape ({n}, 2) to match {n} tiles, got {coords.shape}"
                    + (f" for slide '{slide_id}'." if slide_id is not None else ".")
                )
        self.coords = coords
        self.slide_id = slide_id
        self.meta = dict(meta) if meta else {}
        if assignment is not None:
            assignment = np.asarray(assignment, dtype=np.int64)
            if assignment.ndim != 1 or (len(assignment) and assignment.max() >= n):
                raise ValueError("assignment must be 1-D with values below the tile count.")
        self.assignment = assignment
        self.tile_coords = None if tile_coords is None else np.asarray(tile_coords)

    @property
    def shape(self):
        """(n_tiles, n_features)."""
        return tuple(self.features.shape)

    @property
    def n_tiles(self):
        return self.shape[0]

    @property
    def n_features(self):
        return self.shape[1]

    def __len__(self):
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        arr = np.asarray(self.features)
        target = np.float32 if dtype is None else dtype
        if arr.dtype != target:
            if copy is False:
                raise ValueError("Converting this bag needs a copy (dtype change).")
            return arr.astype(target)
        return arr.copy() if copy else arr

    def __repr__(self):
        n, d = self.shape
        return f"Bag(slide_id={self.slide_id!r}, n_tiles={n}, n_features={d})"
