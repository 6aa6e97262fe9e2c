"""Stage 1 of the data flow: slides.

Open a slide with OpenSlide, resolve its physical resolution, find tissue and lay out
tiles at a requested µm per pixel.
"""

from ._reader import SlideReader, lookup_slide_mpp, slide_fingerprint
from ._tiling import (
    TileGeometry,
    grid_coords,
    plan_geometry,
    select_tissue_tiles,
    tile_fractions,
)
from ._tissue import otsu_threshold, tissue_mask

__all__ = [
    "SlideReader",
    "TileGeometry",
    "grid_coords",
    "lookup_slide_mpp",
    "otsu_threshold",
    "plan_geometry",
    "select_tissue_tiles",
    "slide_fingerprint",
    "tile_fractions",
    "tissue_mask",
]
