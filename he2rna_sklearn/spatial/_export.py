"""Tile scores written for other tools: CSV, Parquet, GeoJSON (QuPath) and AnnData."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_write
from ._tiles import _check_level0, _resolve_scores, tile_extent, tile_layout

__all__ = ["export_tile_scores"]


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
