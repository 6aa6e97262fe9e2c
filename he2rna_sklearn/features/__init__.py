"""Stage 2 of the data flow: features.

Backbones (torchvision, timm, and a registry of pathology encoders), the extraction engine
that runs them over tiles, the on-disk store of one HDF5 file per slide, readers and
writers of other tools' feature files, and the slide index (``index.csv``: which feature
file holds which sample of which patient) that the ``he2rna`` command reads.
"""

from .._torch import resolve_device
from ._backbones import Backbone, build_backbone
from ._build_index import build_index
from ._encoder_modules import TileEncoder
from ._encoders import ENCODERS, TOOL_NAMES, Encoder, get_encoder, list_encoders
from ._export import EXPORT_LAYOUTS, export_features
from ._extract import FeatureRunner, TileDataset, extract_features
from ._featurizer import DEFAULT_MPP, SlideFeaturizer
from ._index import (
    INDEX_NAME,
    check_index_compatible,
    index_from_bags,
    merge_index,
    read_index,
    update_index,
    write_index,
)
from ._interop import read_he2rna_npy, read_pt_features
from ._manifest import read_manifest
from ._stain import ReinhardNormalizer
from ._store import load_bags, read_bag, write_bag

__all__ = [
    "DEFAULT_MPP",
    "ENCODERS",
    "EXPORT_LAYOUTS",
    "INDEX_NAME",
    "TOOL_NAMES",
    "Backbone",
    "Encoder",
    "FeatureRunner",
    "ReinhardNormalizer",
    "SlideFeaturizer",
    "TileDataset",
    "TileEncoder",
    "build_backbone",
    "build_index",
    "check_index_compatible",
    "export_features",
    "extract_features",
    "get_encoder",
    "index_from_bags",
    "list_encoders",
    "load_bags",
    "merge_index",
    "read_bag",
    "read_he2rna_npy",
    "read_index",
    "read_manifest",
    "read_pt_features",
    "resolve_device",
    "update_index",
    "write_bag",
    "write_index",
]
