"""Stage 1 of the data flow: slides.

Open a slide with OpenSlide, resolve its physical resolution, find tissue and lay out
tiles at a requested µm per pixel.
"""

from ._annotations import GEOJSON_SUFFIXES, geojson_tissue_mask, read_geojson_polygons
from ._reader import (
    SlideReader,
    check_slide_file,
    lookup_by_slide,
    lookup_slide_mpp,
    slide_fingerprint,
)
from ._tiling import (
    TileGeometry,
    grid_coords,
    plan_geometry,
    select_tissue_tiles,
    tile_fractions,
)
from ._tissue import (
    AUTO_TISSUE_MASK,
    AUTO_TISSUE_MASK_PEN_MARKS_KEPT,
    otsu_threshold,
    tissue_mask,
)

__all__ = [
    "AUTO_TISSUE_MASK",
    "AUTO_TISSUE_MASK_PEN_MARKS_KEPT",
    "GEOJSON_SUFFIXES",
    "SlideReader",
    "TileGeometry",
    "check_slide_file",
    "geojson_tissue_mask",
    "grid_coords",
    "lookup_by_slide",
    "lookup_slide_mpp",
    "otsu_threshold",
    "plan_geometry",
    "read_geojson_polygons",
    "select_tissue_tiles",
    "slide_fingerprint",
    "tile_fractions",
    "tissue_mask",
]
