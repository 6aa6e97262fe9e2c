"""Virtual spatialization: tile scores painted on the slide (stage 5: outputs)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "export_tile_scores",
    "plot_tile_heatmap",
    "slide_thumbnail",
    "spatial_auc",
    "tile_extent",
    "tile_layout",
]


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


def slide_thumbnail(slide_path, *, slide_mpp=None, max_size=1400):
    """An RGB thumbnail of a slide whose longest side is about ``max_size`` pixels.

    Returns
    -------
    thumb : ndarray of shape (h, w, 3), uint8
    downsample : tuple of float
        (x, y) level-0 pixels per thumbnail pixel.
    """
    from .slides import SlideReader

    with SlideReader(slide_path, slide_mpp) as reader:
        thumb_mpp = reader.mpp * max(reader.dimensions) / max_size
        return reader.thumbnail(max(thumb_mpp, reader.mpp))


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

    meta = getattr(bag, "meta", {}) or {}
    slide_path = slide_path or meta.get("slide_path")
    if slide_path is None:
        raise ValueError("Pass slide_path=: the bag does not record which slide it comes from.")
    coords, values = tile_layout(bag, scores)
    extent = tile_extent(bag)
    thumb, (dx, dy) = slide_thumbnail(
        slide_path, slide_mpp=slide_mpp or meta.get("slide_mpp"), max_size=max_size
    )
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


def _score_table(bag, scores, names):
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
    if names is None:
        names = [f"score_{j}" for j in range(scores.shape[1])]
    names = [str(n) for n in names]
    if len(names) != scores.shape[1]:
        raise ValueError(f"Got {len(names)} names for {scores.shape[1]} score columns.")
    columns = [tile_layout(bag, scores[:, j])[1] for j in range(scores.shape[1])]
    coords, _ = tile_layout(bag, scores[:, 0])

    extent = tile_extent(bag)
    table = pd.DataFrame(
        {
            "slide_id": getattr(bag, "slide_id", None),
            "x": coords[:, 0],
            "y": coords[:, 1],
            "width": extent,
            "height": extent,
        }
    )
    for name, col in zip(names, columns):
        table[name] = col
    return table, names


def export_tile_scores(bag, scores, path, *, names=None, format=None):
    """Write per-tile scores for other tools; super-tile scores are painted back on tiles.

    Parameters
    ----------
    bag : Bag
    scores : array-like of shape (n_rows,) or (n_rows, n_scores)
        E.g. :meth:`HE2RNARegressor.predict_tiles` for some genes.
    path : str or Path
    names : sequence of str, optional
        Score names (gene names); default ``score_0``...
    format : {"csv", "parquet", "geojson", "anndata"}, optional
        Default from the suffix: ``.csv``, ``.parquet``, ``.geojson``/``.json``,
        ``.h5ad``. GeoJSON holds one square polygon per tile in level-0 pixels with the
        scores as ``measurements``, which QuPath imports (File > Import objects).
        AnnData (needs ``anndata``) has tiles as observations and tile centres in
        ``obsm["spatial"]``. Parquet needs ``pyarrow``.

    Returns
    -------
    path : Path
    """
    from pathlib import Path

    from ._io import atomic_write

    path = Path(path)
    if format is None:
        format = {
            ".csv": "csv",
            ".parquet": "parquet",
            ".geojson": "geojson",
            ".json": "geojson",
            ".h5ad": "anndata",
        }.get(path.suffix.lower())
        if format is None:
            raise ValueError(f"Cannot tell the format of '{path}'; pass format=.")
    table, names = _score_table(bag, scores, names)
    if format not in ("csv", "parquet", "geojson", "anndata"):
        raise ValueError(f"format must be csv, parquet, geojson or anndata, got {format!r}.")
    with atomic_write(path) as tmp:
        _write_scores(table, names, tmp, format)
    return path


def _write_scores(table, names, tmp, format):
    import json

    if format == "csv":
        table.to_csv(tmp, index=False)
    elif format == "parquet":
        table.to_parquet(tmp, index=False)
    elif format == "geojson":
        features = []
        for i, row in enumerate(table.itertuples(index=False)):
            x, y, e = float(row.x), float(row.y), float(row.width)
            features.append(
                {
                    "type": "Feature",
                    "id": str(i),
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[x, y], [x + e, y], [x + e, y + e], [x, y + e], [x, y]]],
                    },
                    "properties": {
                        "objectType": "detection",
                        "measurements": {n: float(table.at[i, n]) for n in names},
                    },
                }
            )
        tmp.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    elif format == "anndata":
        try:
            import anndata
        except ImportError as exc:
            raise ImportError("AnnData export needs anndata: pip install anndata") from exc
        obs = table[["slide_id", "x", "y", "width", "height"]].copy()
        obs.index = [f"tile_{i}" for i in range(len(obs))]
        adata = anndata.AnnData(
            X=table[names].to_numpy(np.float32),
            obs=obs,
            var=pd.DataFrame(index=names),
        )
        adata.obsm["spatial"] = (
            table[["x", "y"]].to_numpy(np.float64) + table[["width"]].to_numpy() / 2
        )
        adata.write_h5ad(tmp)
