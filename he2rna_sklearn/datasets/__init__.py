"""Data sets: a synthetic cohort on real tissue, and readers of expression tables (including
GDC STAR per-sample files)."""

from ._expression import load_expression, tcga_patient_id
from ._gdc import load_gdc_star
from ._synthetic import (
    CLASS_NAMES,
    GENE_PROGRAMS,
    make_synthetic_cohort,
    tile_classes,
    write_pyramidal_tiff,
)

__all__ = [
    "CLASS_NAMES",
    "GENE_PROGRAMS",
    "load_expression",
    "load_gdc_star",
    "make_synthetic_cohort",
    "tcga_patient_id",
    "tile_classes",
    "write_pyramidal_tiff",
]
