"""Tile scores placed on the slide: tile geometry, super-tile scores painted back on their
tiles, and fold ensembles of z-scored maps."""

from __future__ import annotations

import numpy as np

__all__ = ["ensemble_tile_scores", "tile_extent", "tile_layout"]


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
    elif unit == "stamp-unknown":
        has = (
            "in an unknown unit (a STAMP file without a 'unit' attribute and too few tiles "
            "to tell its grid: STAMP's historic files count 224-px tiles of 256 µm)"
        )
        fix = "re-extract it with a current STAMP, or write unit='um' and tile_size_um into it"
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
