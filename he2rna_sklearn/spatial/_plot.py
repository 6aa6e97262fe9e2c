"""Heatmaps of tile scores over the slide thumbnail."""

from __future__ import annotations

import numpy as np

from ._tiles import _as_models, _check_level0, _resolve_scores, tile_extent, tile_layout

__all__ = ["plot_tile_heatmap", "slide_thumbnail"]


def slide_thumbnail(slide_path, *, slide_mpp=None, max_size=1400):
    """An RGB thumbnail of a slide whose longest side is about ``max_size`` pixels.

    Returns
    -------
    thumb : ndarray of shape (h, w, 3), uint8
    downsample : tuple of float
        (x, y) level-0 pixels per thumbnail pixel.
    """
    from ..slides import SlideReader

    with SlideReader(slide_path, slide_mpp) as reader:
        thumb_mpp = reader.mpp * max(reader.dimensions) / max_size
        return reader.thumbnail(max(thumb_mpp, reader.mpp))


def _check_slide(bag, slide_path, slide_mpp):
    """Refuse a slide that is not the one the bag's features come from: its SHA-256 against
    the fingerprint this package's feature files record, and its size against the one
    TRIDENT's files record (``level0_width``, ``level0_height``)."""
    from ..slides import SlideReader, slide_fingerprint

    meta = getattr(bag, "meta", {}) or {}
    label = f"of {bag.slide_id!r}" if getattr(bag, "slide_id", None) else ""
    expected = meta.get("slide_fingerprint")
    if expected and slide_fingerprint(slide_path) != str(expected):
        featurized = meta.get("slide_path")
        raise ValueError(
            f"Slide '{slide_path}' is not the slide whose features these are (the bag {label}"
            + (f", featurized from '{featurized}'" if featurized else "")
            + f"; its file differs from {expected}). Pass the slide the features were "
            "computed from."
        )
    size = (meta.get("coords_level0_width"), meta.get("coords_level0_height"))
    if all(v is not None for v in size):
        with SlideReader(slide_path, slide_mpp) as reader:
            dimensions = tuple(int(v) for v in reader.dimensions)
        if dimensions != tuple(int(v) for v in size):
            raise ValueError(
                f"Slide '{slide_path}' is {dimensions[0]} x {dimensions[1]} px, but the feature "
                f"file {label} was made from a slide of {int(size[0])} x {int(size[1])} px: "
                "pass the slide the features were computed from."
            )


def plot_tile_heatmap(
    bag,
    scores,
    *,
    genes=None,
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
    scores : array-like of shape (n_rows,), or fitted model(s)
        One score per bag row, e.g. a gene's column of
        :meth:`HE2RNARegressor.predict_tiles`. Or a fitted model, or a list of them (e.g.
        the 5 fold models), with ``genes``: the map is then
        :func:`ensemble_tile_scores`, the mean over models of their z-scored tile scores.
    genes : str or sequence of str, optional
        With models: the gene, or the gene set (mean over its genes), to paint.
    slide_path : str or Path, optional
        The slide; default ``bag.meta["slide_path"]``. A slide other than the one the
        features come from is refused: its SHA-256 is compared with the fingerprint that
        this package's feature files record (reading the whole file once), its size with
        the one TRIDENT's files record.
    slide_mpp : float, optional
        Base resolution, for slides lacking it; default ``bag.meta["slide_mpp"]``.
    label : str, optional
        Colour-bar label (e.g. the gene name); with models, default the gene(s).
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

    _check_level0(bag, "plot_tile_heatmap")
    if _as_models(scores) is not None and genes is None:
        raise ValueError(
            "With fitted models as scores, pass genes= (one gene or a gene set) to paint."
        )
    scores, names, unit = _resolve_scores(bag, scores, genes)
    if names is not None and label is None:
        label = f"{names[0]} ({unit})"
    meta = getattr(bag, "meta", {}) or {}
    slide_path = slide_path or meta.get("slide_path")
    if slide_path is None:
        raise ValueError("Pass slide_path=: the bag does not record which slide it comes from.")
    coords, values = tile_layout(bag, scores)
    extent = tile_extent(bag)
    slide_mpp = slide_mpp or meta.get("slide_mpp")
    _check_slide(bag, slide_path, slide_mpp)
    thumb, (dx, dy) = slide_thumbnail(slide_path, slide_mpp=slide_mpp, max_size=max_size)
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
