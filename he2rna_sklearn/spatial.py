"""Virtual spatialization: tile scores painted on the slide (stage 5: outputs)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_tile_heatmap", "tile_extent", "tile_layout"]


def tile_extent(bag):
    """Tile side in level-0 pixels: from ``bag.meta["extent"]``, else from the coords grid."""
    meta = getattr(bag, "meta", {}) or {}
    for key in ("extent", "coords_patch_size"):
        if meta.get(key):
            return float(meta[key])
    coords = getattr(bag, "tile_coords", None)
    if coords is None:
        coords = getattr(bag, "coords", None)
    if coords is None or len(coords) < 2:
        raise ValueError("Cannot tell the tile size: the bag has no 'extent' and too few coords.")
    steps = np.concatenate([np.diff(np.unique(coords[:, 0])), np.diff(np.unique(coords[:, 1]))])
    steps = steps[steps > 0]
    if not len(steps):
        raise ValueError("Cannot tell the tile size from the bag's coords.")
    return float(steps.min())


def tile_layout(bag, scores):
    """Per-tile coords and scores, painting super-tile scores back onto their tiles.

    Parameters
    ----------
    bag : Bag
    scores : array-like of shape (n_rows,)
        One score per row of the bag (tile or super-tile).

    Returns
    -------
    coords : ndarray of shape (n_tiles, 2)
    scores : ndarray of shape (n_tiles,)
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(scores) != bag.shape[0]:
        raise ValueError(f"Got {len(scores)} scores for a bag of {bag.shape[0]} rows.")
    assignment = getattr(bag, "assignment", None)
    if assignment is not None:
        return np.asarray(bag.tile_coords), scores[assignment]
    if getattr(bag, "coords", None) is None:
        raise ValueError("The bag has no coords; tile scores cannot be placed on the slide.")
    return np.asarray(bag.coords), scores


def plot_tile_heatmap(
    bag,
    scores,
    *,
    slide_path=None,
    slide_mpp=None,
    label=None,
    ax=None,
    cmap="inferno",
    alpha=0.65,
    percentiles=(2, 98),
    max_size=1400,
):
    """Paint tile scores over the slide thumbnail.

    Parameters
    ----------
    bag : Bag
        The slide's bag (its ``coords``; for super-tiles, ``assignment`` and
        ``tile_coords``).
    scores : array-like of shape (n_rows,)
        One score per bag row, e.g. a gene's column of
        :meth:`HE2RNARegressor.predict_tiles`.
    slide_path : str or Path, optional
        The slide; default ``bag.meta["slide_path"]``.
    slide_mpp : float, optional
        Base resolution, for slides lacking it; default ``bag.meta["slide_mpp"]``.
    label : str, optional
        Colour-bar label (e.g. the gene name).
    ax : matplotlib Axes, optional
    cmap : str
    alpha : float
        Opacity of the score layer.
    percentiles : tuple of float
        Colour limits at these percentiles of the scores (robust to outliers).
    max_size : int
        Largest thumbnail side in pixels.

    Returns
    -------
    ax : matplotlib Axes
    """
    import matplotlib.pyplot as plt

    from .slides import SlideReader

    meta = getattr(bag, "meta", {}) or {}
    slide_path = slide_path or meta.get("slide_path")
    if slide_path is None:
        raise ValueError("Pass slide_path=: the bag does not record which slide it comes from.")
    coords, values = tile_layout(bag, scores)
    extent = tile_extent(bag)
    with SlideReader(slide_path, slide_mpp or meta.get("slide_mpp")) as reader:
        w, h = reader.dimensions
        thumb_mpp = reader.mpp * max(w, h) / max_size
        thumb, (dx, dy) = reader.thumbnail(max(thumb_mpp, reader.mpp))
    layer = np.full(thumb.shape[:2], np.nan)
    for (x, y), v in zip(coords, values):
        c0, r0 = int(round(x / dx)), int(round(y / dy))
        c1, r1 = int(round((x + extent) / dx)), int(round((y + extent) / dy))
        layer[r0 : max(r1, r0 + 1), c0 : max(c1, c0 + 1)] = v
    vmin, vmax = np.nanpercentile(values, percentiles) if len(values) else (0, 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 8 * thumb.shape[0] / thumb.shape[1] + 0.5))
    ax.imshow(thumb)
    im = ax.imshow(
        np.ma.masked_invalid(layer),
        cmap=cmap,
        alpha=alpha,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    cbar = ax.figure.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
    cbar.set_label(label or "tile score")
    ax.set_title(f"{label or 'tile score'}: {getattr(bag, 'slide_id', '') or ''}")
    ax.set_axis_off()
    return ax
