"""The paper's checks of virtual spatialization: tile scores against tile classes (ROC
AUC) and against annotated tile fractions (correlation)."""

from __future__ import annotations

import numpy as np

from ._tiles import _check_level0, tile_extent

__all__ = ["spatial_auc", "spatial_correlation", "tile_mask_fraction"]


def spatial_auc(tile_scores, tile_labels, positive):
    """ROC AUC of tile scores against tile classes: do high scores mark ``positive`` tiles?

    The paper's check of virtual spatialization (lymphocyte-marker scores against
    lymphocyte tiles of NCT-CRC-HE).

    Parameters
    ----------
    tile_scores : array-like of shape (n_tiles,)
    tile_labels : array-like of shape (n_tiles,)
    positive : label or sequence of labels
        The class (or classes) counted as positive; every other tile is negative.
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(tile_scores, dtype=np.float64).ravel()
    labels = np.asarray(tile_labels)
    if scores.shape != labels.shape:
        raise ValueError(f"Got {scores.shape[0]} scores for {labels.shape[0]} tile labels.")
    target = np.isin(labels, np.atleast_1d(positive))
    if target.all() or not target.any():
        raise ValueError(
            f"spatial_auc needs both positive ({positive!r}) and other tiles; got "
            f"{int(target.sum())} positive of {len(target)}."
        )
    return float(roc_auc_score(target, scores))


def spatial_correlation(tile_scores, tile_fraction, *, method="pearson"):
    """Correlation of tile scores with an annotated fraction per tile.

    The paper's second check of virtual spatialization: per tile, the fraction of its area
    inside an annotation mask (e.g. the epithelium masks of the PESO prostate data set,
    see :func:`tile_mask_fraction`) against the tile scores of a gene set that marks it.

    Parameters
    ----------
    tile_scores : array-like of shape (n_tiles,)
        For a bag of super-tiles, paint the scores on the tiles first
        (:func:`tile_layout`).
    tile_fraction : array-like of shape (n_tiles,)
        Annotated fraction of each tile, in [0, 1].
    method : {"pearson", "spearman"}, default="pearson"

    Returns
    -------
    r : float

    Examples
    --------
    >>> round(spatial_correlation([0.1, 0.5, 0.9, 0.3], [0.0, 0.5, 1.0, 0.5]), 3)
    0.956
    """
    from scipy.stats import rankdata

    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}.")
    scores = np.asarray(tile_scores, dtype=np.float64).ravel()
    fraction = np.asarray(tile_fraction, dtype=np.float64).ravel()
    if scores.shape != fraction.shape:
        raise ValueError(
            f"Got {scores.shape[0]} tile scores for {fraction.shape[0]} tile fractions."
        )
    if len(scores) < 3:
        raise ValueError(f"spatial_correlation needs at least 3 tiles, got {len(scores)}.")
    for name, values in (("tile_scores", scores), ("tile_fraction", fraction)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} has NaN or infinite values.")
        if np.ptp(values) == 0:
            raise ValueError(f"{name} is constant, so the correlation is undefined.")
    if fraction.min() < -1e-9 or fraction.max() > 1 + 1e-9:
        raise ValueError(
            "tile_fraction must lie in [0, 1] (the fraction of each tile inside the "
            f"annotation), got values in [{fraction.min():g}, {fraction.max():g}]."
        )
    if method == "spearman":
        scores, fraction = rankdata(scores), rankdata(fraction)
    a, b = scores - scores.mean(), fraction - fraction.mean()
    return float(np.clip((a @ b) / np.sqrt((a @ a) * (b @ b)), -1.0, 1.0))


def tile_mask_fraction(bag, mask, downsample):
    """The fraction of each tile's area inside a binary annotation mask.

    Parameters
    ----------
    bag : Bag
        Tiles placed by ``coords`` (for super-tiles, the source tiles: ``tile_coords``, in
        the order of :func:`tile_layout`), of side :func:`tile_extent`.
    mask : array-like of shape (rows, cols)
        The annotation (True or 1 inside; values in [0, 1] are read as partial cover) over
        the slide, row = y.
    downsample : float or (float, float)
        Level-0 pixels per mask pixel, along x and y.

    Returns
    -------
    fraction : ndarray of shape (n_tiles,)
        Area-weighted mean of the mask over each tile's part inside the mask image.

    Examples
    --------
    >>> from he2rna_sklearn import Bag
    >>> bag = Bag(np.zeros((2, 4)), coords=[[0, 0], [224, 0]], meta={"extent": 224})
    >>> mask = np.zeros((2, 4))
    >>> mask[:, 3] = 1  # covers the right half of the second tile
    >>> tile_mask_fraction(bag, mask, downsample=112).tolist()
    [0.0, 0.5]
    """
    _check_level0(bag, "tile_mask_fraction")
    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (rows, cols), got shape {mask.shape}.")
    if not np.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise ValueError("mask must hold values in [0, 1] (True/1 inside the annotation).")
    dx, dy = (float(downsample),) * 2 if np.ndim(downsample) == 0 else map(float, downsample)
    if dx <= 0 or dy <= 0:
        raise ValueError(f"downsample must be positive, got {downsample!r}.")
    coords = getattr(bag, "tile_coords", None)
    if coords is None:
        coords = getattr(bag, "coords", None)
    if coords is None:
        raise ValueError("The bag has no coords; tiles cannot be placed on the mask.")
    coords = np.asarray(coords, dtype=np.float64)
    extent = tile_extent(bag)
    rows, cols = mask.shape
    out = np.empty(len(coords))
    for i, (x, y) in enumerate(coords):
        wx = _overlap(x / dx, (x + extent) / dx, cols)
        wy = _overlap(y / dy, (y + extent) / dy, rows)
        area = wy.sum() * wx.sum()
        if area <= 0:
            raise ValueError(
                f"Tile {i} at ({x:g}, {y:g}) lies outside the mask ({cols} x {rows} pixels at "
                f"downsample {downsample}); is the downsample right?"
            )
        out[i] = wy @ mask @ wx / area
    return np.clip(out, 0.0, 1.0)  # rounding


def _overlap(start, stop, n):
    """Length of [start, stop) inside each of the n unit pixels [j, j + 1)."""
    edges = np.arange(n + 1, dtype=np.float64)
    return np.clip(np.minimum(stop, edges[1:]) - np.maximum(start, edges[:-1]), 0, None)
