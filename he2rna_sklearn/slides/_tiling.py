"""Tiling geometry: which pyramid level to read, how large, and where the tiles lie."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "TileGeometry",
    "grid_coords",
    "plan_geometry",
    "select_tissue_tiles",
    "thumbnail_mpp",
    "tile_fractions",
]

#: Base resolutions within this relative distance of the requested one count as equal.
MPP_TOLERANCE = 0.1


@dataclass(frozen=True)
class TileGeometry:
    """How one slide is tiled.

    Attributes
    ----------
    mpp : float
        Effective resolution of the tiles fed to the backbone (µm/px).
    tile_size : int
        Tile side in pixels at ``mpp`` (the backbone's input size).
    extent : float
        Tile side in level-0 pixels; also the grid stride.
    level : int
        Pyramid level read.
    read_size : int
        Side of the region read at ``level`` before resizing to ``tile_size``.
    """

    mpp: float
    tile_size: int
    extent: float
    level: int
    read_size: int


def plan_geometry(reader, mpp, tile_size):
    """Choose the pyramid level and read size that give ``tile_size`` px tiles at ``mpp``.

    The level read is the coarsest one at least as fine as ``mpp``; the region is resized
    down to ``tile_size``. A request finer than the slide's base resolution is refused:
    nothing is upsampled. Within 10% of the base resolution, tiles are read at the base
    resolution without resampling and the effective mpp is the slide's.
    """
    if not mpp > 0:
        raise ValueError(f"mpp must be a positive number of µm per pixel, got {mpp!r}.")
    factor = mpp / reader.mpp
    if factor < 1 / (1 + MPP_TOLERANCE):
        raise ValueError(
            f"mpp={mpp} asks for a finer resolution than slide '{reader.path}' has "
            f"({reader.mpp:.4g} µm/px at its base level); upsampling is refused. Use "
            f"mpp >= {reader.mpp:.4g}."
        )
    if factor < 1:
        factor = 1.0
    level = reader.best_level(factor)
    level_ds = reader.level_downsamples[level]
    read_size = max(1, round(tile_size * factor / level_ds))
    return TileGeometry(
        mpp=reader.mpp * factor,
        tile_size=int(tile_size),
        extent=tile_size * factor,
        level=level,
        read_size=read_size,
    )


def grid_coords(dimensions, extent):
    """Top-left level-0 (x, y) of every whole tile on a regular grid, row-major order."""
    w, h = dimensions
    nx = int(np.floor(w / extent + 1e-9))
    ny = int(np.floor(h / extent + 1e-9))
    xs = np.floor(np.arange(nx) * extent).astype(np.int64)
    ys = np.floor(np.arange(ny) * extent).astype(np.int64)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.column_stack([xx.ravel(), yy.ravel()])


def tile_fractions(mask, downsample, coords, extent):
    """Fraction of each tile's footprint covered by ``mask``.

    Parameters
    ----------
    mask : ndarray of shape (h, w), bool
        Mask on a thumbnail.
    downsample : tuple of float
        (x, y) level-0 pixels per mask pixel.
    coords : ndarray of shape (n, 2)
        Level-0 top-left corners.
    extent : float
        Tile side in level-0 pixels.
    """
    mask = np.asarray(mask, dtype=np.float64)
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1))
    integral[1:, 1:] = mask.cumsum(0).cumsum(1)
    dx, dy = downsample
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    x0 = np.clip(np.round(coords[:, 0] / dx), 0, mask.shape[1]).astype(int)
    y0 = np.clip(np.round(coords[:, 1] / dy), 0, mask.shape[0]).astype(int)
    x1 = np.clip(np.round((coords[:, 0] + extent) / dx), 0, mask.shape[1]).astype(int)
    y1 = np.clip(np.round((coords[:, 1] + extent) / dy), 0, mask.shape[0]).astype(int)
    x1 = np.maximum(x1, np.minimum(x0 + 1, mask.shape[1]))
    y1 = np.maximum(y1, np.minimum(y0 + 1, mask.shape[0]))
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    covered = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return covered / area


def thumbnail_mpp(reader, geometry, *, min_px_per_tile=8, coarsest=16.0):
    """A thumbnail resolution fine enough to give each tile ``min_px_per_tile`` pixels."""
    tile_um = geometry.extent * reader.mpp
    return max(reader.mpp, min(coarsest, tile_um / min_px_per_tile))


def select_tissue_tiles(
    reader,
    geometry,
    *,
    min_tissue_fraction=0.5,
    max_tiles=None,
    random_state=None,
    mask=None,
    exclude_pen_marks=True,
):
    """Level-0 coordinates of the tiles that hold enough tissue, in row-major order.

    Parameters
    ----------
    reader : SlideReader
    geometry : TileGeometry
    min_tissue_fraction : float
        Minimum fraction of a tile's footprint that must be tissue.
    max_tiles : int, optional
        If more tiles qualify, a subset of this size is drawn with ``random_state``; the
        kept tiles stay in row-major order.
    random_state : int, RandomState or None
    mask : ndarray of bool, optional
        A user tissue mask covering the whole slide at any resolution (it is mapped onto
        level 0 by its shape). Replaces automatic detection.
    exclude_pen_marks : bool, default=True
        Whether the automatic detection leaves out blue, green and black pen marks (see
        :func:`tissue_mask`); ignored with ``mask``.

    Returns
    -------
    coords : ndarray of shape (n, 2), int64
    mask : ndarray of bool
        The tissue mask used.
    downsample : tuple of float
        Level-0 pixels per mask pixel in (x, y).
    """
    from sklearn.utils import check_random_state

    from ._tissue import tissue_mask

    w, h = reader.dimensions
    if mask is None:
        thumb, downsample = reader.thumbnail(thumbnail_mpp(reader, geometry))
        mask = tissue_mask(thumb, exclude_pen_marks=exclude_pen_marks)
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise ValueError(f"A tissue mask must be 2-D, got shape {mask.shape}.")
        downsample = (w / mask.shape[1], h / mask.shape[0])
    coords = grid_coords((w, h), geometry.extent)
    if len(coords):
        frac = tile_fractions(mask, downsample, coords, geometry.extent)
        coords = coords[frac >= min_tissue_fraction]
    if max_tiles is not None and len(coords) > max_tiles:
        rng = check_random_state(random_state)
        keep = np.sort(rng.choice(len(coords), size=int(max_tiles), replace=False))
        coords = coords[keep]
    return coords, mask, downsample
