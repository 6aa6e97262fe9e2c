"""Write a large synthetic pyramidal slide tile by tile (never a whole-slide array)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from he2rna_sklearn._io import atomic_write
from he2rna_sklearn.datasets._synthetic import CLASS_NAMES, _load_textures, tiff_level_options

CELL = 150  # level-0 px per texture cell


def _cell_classes(shape, rng):
    """A class per cell: an elliptical tissue region with blocky class patches."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    inside = ((yy - rows / 2) / (rows * 0.45)) ** 2 + ((xx - cols / 2) / (cols * 0.45)) ** 2 < 1
    patches = rng.integers(1, len(CLASS_NAMES), size=(rows // 8 + 1, cols // 8 + 1))
    classes = np.kron(patches, np.ones((8, 8), dtype=int))[:rows, :cols]
    return np.where(inside, classes, 0)


def write_large_slide(path, size=20_000, mpp=0.495, downsamples=(1, 4, 16, 64), tile=256, seed=0):
    """Write a ``size`` x ``size`` px JPEG pyramidal TIFF made of the Kather textures."""
    import tifffile

    path = Path(path)
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    textures = _load_textures()
    cells = _cell_classes((size // CELL + 1, size // CELL + 1), rng)
    with atomic_write(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        for i, ds in enumerate(downsamples):
            side = size // ds
            cell = CELL / ds
            scaled = {
                name: [
                    np.asarray(Image.fromarray(t).resize((max(1, round(cell)),) * 2)) for t in tiles
                ]
                for name, tiles in textures.items()
            }

            def tiles_of_level(side=side, cell=cell, scaled=scaled):
                for ty in range(0, side, tile):
                    for tx in range(0, side, tile):
                        out = np.empty((tile, tile, 3), dtype=np.uint8)
                        r0, c0 = int(ty // cell), int(tx // cell)
                        r1, c1 = int((ty + tile) // cell) + 1, int((tx + tile) // cell) + 1
                        for r in range(r0, r1):
                            for c in range(c0, c1):
                                cls = CLASS_NAMES[
                                    cells[min(r, cells.shape[0] - 1), min(c, cells.shape[1] - 1)]
                                ]
                                tex = scaled[cls][(r * 7 + c * 13) % len(scaled[cls])]
                                y0, x0 = round(r * cell) - ty, round(c * cell) - tx
                                ys, xs = max(y0, 0), max(x0, 0)
                                ye = min(y0 + tex.shape[0], tile)
                                xe = min(x0 + tex.shape[1], tile)
                                if ye > ys and xe > xs:
                                    out[ys:ye, xs:xe] = tex[ys - y0 : ye - y0, xs - x0 : xe - x0]
                        yield out

            tw.write(
                tiles_of_level(),
                shape=(side, side, 3),
                dtype=np.uint8,
                **tiff_level_options(mpp, ds, i == 0, tile, quality=85),
            )
    return path
