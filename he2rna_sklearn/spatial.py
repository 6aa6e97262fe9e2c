"""Virtual spatialization: tile scores painted on the slide (stage 5: outputs)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "ensemble_tile_scores",
    "export_tile_scores",
    "plot_tile_heatmap",
    "slide_thumbnail",
    "spatial_auc",
    "spatial_correlation",
    "tile_extent",
    "tile_layout",
    "tile_mask_fraction",
]


def _check_level0(bag, what):
    """Raise unless the bag's coords are level-0 pixels (``meta["coords_unit"]``).

    Feature files of other tools can leave coordinates in µm (STAMP, read without the
    slide's µm per pixel) or in pixels of a downsampled DeepZoom level (HE2RNA ``.npy``,
    read without the slide's dimensions). Drawn or exported as level-0 pixels they land in
    the wrong place, so ``what`` (a function that places tiles on the slide) refuses them.
    A bag without ``coords_unit`` is in pixels (this package's own files).
    """
    meta = getattr(bag, "meta", None) or {}
    unit = meta.get("coords_unit") or "px"
    if unit == "px":
        return
    source = meta.get("feature_file")
    source = repr(str(source)) if source else "path"
    if unit == "um":
        has = "in µm (a STAMP file read without the slide's µm per pixel)"
        fix = (
            f"re-read it with read_bag({source}, slide_mpp=...) (the slide's level-0 µm per pixel)"
        )
    elif unit == "deepzoom_px":
        level = meta.get("deepzoom_level", "?")
        has = f"in pixels of DeepZoom level {level} (an HE2RNA .npy file read without the "
        has += "slide's dimensions)"
        fix = (
            f"re-read it with read_he2rna_npy({source}, slide_dimensions=...) (the slide's "
            "level-0 width and height)"
        )
    else:
        has, fix = f"in unit {unit!r}", "convert them to level-0 pixels"
    slide = getattr(bag, "slide_id", None)
    slide = f" of {slide!r}" if slide is not None else ""
    raise ValueError(
        f"{what} needs tile coordinates in level-0 pixels, but the bag{slide} has them {has}, "
        f"bag.meta['coords_unit'] == {unit!r}; {fix}."
    )


def tile_extent(bag):
    """Tile side in level-0 pixels: from ``bag.meta["extent"]``, else from the coords grid.

    Raises ``ValueError`` for a bag whose coords are not level-0 pixels
    (``bag.meta["coords_unit"]`` "um" or "deepzoom_px").
    """
    _check_level0(bag, "tile_extent")
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
        In the bag's unit: level-0 pixels unless ``bag.meta["coords_unit"]`` says otherwise
        ("um", "deepzoom_px"; see :func:`~he2rna_sklearn.features.read_bag`).
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


def _zscore(scores):
    """Z-score each column over the bag's rows (a constant column becomes 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    std = scores.std(axis=0)
    return (scores - scores.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _as_models(scores):
    """The models in ``scores`` (one, or a list or tuple of them), else None (an array)."""
    if hasattr(scores, "predict_tiles"):
        return [scores]
    if isinstance(scores, (list, tuple)) and scores:
        has = [hasattr(m, "predict_tiles") for m in scores]
        if all(has):
            return list(scores)
        if any(has):
            raise TypeError(
                "scores mixes fitted models and other values; pass either an array of tile "
                "scores or a list of fitted models (each with predict_tiles)."
            )
    return None


def ensemble_tile_scores(models, bag, genes=None):
    """Per-tile scores of one bag, averaged over several fitted models (a fold ensemble).

    The paper's maps average over its 5 cross-validation models and over the genes of a
    set. Each model's tile scores are z-scored over the bag's rows (tiles or super-tiles),
    per gene, then averaged over the genes of ``genes`` and over the models: the map is
    the mean over models of the single-model z-scored maps. Z-scoring puts models whose
    predictions differ in offset and spread (each fold has its own training mean) on one
    scale; the result is in standard deviations over the slide, not in expression units.

    Parameters
    ----------
    models : fitted estimator or sequence of fitted estimators
        Each with a ``predict_tiles(bag, genes)`` method, e.g. the
        :class:`~he2rna_sklearn.HE2RNARegressor` of every fold
        (``cross_validate(..., return_estimator=True)["estimator"]``). For a Pipeline, pass
        its last step and the bag transformed by the steps before it.
    bag : Bag or array-like of shape (n_rows, n_features)
    genes : str or sequence of str, optional
        One gene, or a gene set (averaged over its genes). Default: every gene, which all
        models must predict in the same order.

    Returns
    -------
    scores : ndarray of shape (n_rows,) with ``genes``, else (n_rows, n_genes)

    Examples
    --------
    >>> from sklearn.model_selection import GroupKFold, cross_validate
    >>> cv = cross_validate(HE2RNARegressor(), bags, Y, groups=patients,
    ...                     cv=GroupKFold(5), return_estimator=True)  # doctest: +SKIP
    >>> tiles = ensemble_tile_scores(cv["estimator"], bags[0], "CD3E")  # doctest: +SKIP
    """
    found = _as_models(models)
    if found is None:
        raise TypeError(
            "models must be a fitted model with predict_tiles (e.g. HE2RNARegressor) or a "
            f"non-empty list of them, got {type(models).__name__}. For a Pipeline, pass its "
            "last step."
        )
    if genes is None:
        names = [list(getattr(m, "gene_names_", [])) for m in found]
        if any(n != names[0] for n in names[1:]):
            raise ValueError(
                "The models predict different genes; pass genes= (a gene or a gene set) that "
                "they all predict."
            )
    maps = []
    for model in found:
        scores = np.asarray(model.predict_tiles(bag, genes), dtype=np.float64)
        if genes is None or isinstance(genes, str):
            scores = _zscore(scores)  # a gene set comes back as its mean of z-scores
        maps.append(scores)
    return np.mean(maps, axis=0)


def _resolve_scores(bag, scores, genes):
    """Scores from an array, or from fitted models (ensemble); and their default names."""
    models = _as_models(scores)
    if models is None:
        if genes is not None:
            raise ValueError(
                "genes= selects the genes of fitted models; with an array of scores, select "
                "its columns yourself."
            )
        return scores, None, None
    values = ensemble_tile_scores(models, bag, genes)
    if genes is None:
        names = [str(g) for g in models[0].gene_names_]
    elif isinstance(genes, str):
        names = [genes]
    else:
        names = ["+".join(str(g) for g in genes)]
    unit = "z-score" + (f", mean of {len(models)} models" if len(models) > 1 else "")
    return values, names, unit


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
        The slide; default ``bag.meta["slide_path"]``.
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


def export_tile_scores(bag, scores, path, *, names=None, format=None, genes=None):
    """Write per-tile scores for other tools; super-tile scores are painted back on tiles.

    Parameters
    ----------
    bag : Bag
    scores : array-like of shape (n_rows,) or (n_rows, n_scores), or fitted model(s)
        E.g. :meth:`HE2RNARegressor.predict_tiles` for some genes. Or a fitted model, or a
        list of them (e.g. the 5 fold models): the scores are then
        :func:`ensemble_tile_scores` (z-scores averaged over models) of ``genes``.
    path : str or Path
    names : sequence of str, optional
        Score names (gene names); default ``score_0``..., or with models the genes (a gene
        set's column is named ``GENE1+GENE2...``).
    format : {"csv", "parquet", "geojson", "anndata"}, optional
        Default from the suffix: ``.csv``, ``.parquet``, ``.geojson``/``.json``,
        ``.h5ad``. GeoJSON holds one square polygon per tile in level-0 pixels with the
        scores as ``measurements``, which QuPath imports (File > Import objects).
        AnnData (needs ``anndata``) has tiles as observations and tile centres in
        ``obsm["spatial"]``. Parquet needs ``pyarrow``.
    genes : str or sequence of str, optional
        With models: one gene, a gene set (one column, the mean over its genes), or every
        gene (default).

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
    _check_level0(bag, "export_tile_scores")
    scores, model_names, _ = _resolve_scores(bag, scores, genes)
    table, names = _score_table(bag, scores, names if names is not None else model_names)
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
