"""Data sets: a synthetic cohort on real tissue, and readers of expression tables (including
GDC STAR per-sample files)."""

from ._expression import (
    PRIMARY_TUMOUR,
    default_patient_id,
    load_expression,
    tcga_patient_id,
    tcga_sample_type,
)
from ._expression_cohort import (
    COHORT_CLASS_NAMES,
    SIGNATURES,
    make_expression_cohort,
    signature_scores,
)
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
    "COHORT_CLASS_NAMES",
    "SIGNATURES",
    "GENE_PROGRAMS",
    "PRIMARY_TUMOUR",
    "default_patient_id",
    "load_expression",
    "load_gdc_star",
    "make_expression_cohort",
    "make_synthetic_cohort",
    "signature_scores",
    "tcga_patient_id",
    "tcga_sample_type",
    "tile_classes",
    "write_pyramidal_tiff",
]
