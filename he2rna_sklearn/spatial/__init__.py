"""Virtual spatialization: tile scores painted on the slide (stage 5: outputs).

Tile geometry and fold ensembles (``_tiles``), heatmaps (``_plot``), the paper's checks
against tile annotations (``_metrics``) and exports for other tools (``_export``).
"""

from ._export import export_tile_scores
from ._metrics import spatial_auc, spatial_correlation, tile_mask_fraction
from ._plot import plot_tile_heatmap, slide_thumbnail
from ._tiles import ensemble_tile_scores, tile_extent, tile_layout

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
