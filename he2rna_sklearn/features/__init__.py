"""Stage 2 of the data flow: features.

Backbones (torchvision, timm, and a registry of pathology encoders), the extraction engine
that runs them over tiles, the on-disk store of one HDF5 file per slide, and readers and
writers of other tools' feature files.
"""

from .._torch import resolve_device
from ._backbones import Backbone, build_backbone
from ._encoders import ENCODERS, Encoder, TileEncoder, get_encoder, list_encoders
from ._extract import FeatureRunner, TileDataset, extract_features
from ._featurizer import SlideFeaturizer
from ._interop import build_index, read_he2rna_npy, read_pt_features
from ._stain import ReinhardNormalizer
from ._store import load_bags, read_bag, write_bag

__all__ = [
    "ENCODERS",
    "Backbone",
    "Encoder",
    "FeatureRunner",
    "ReinhardNormalizer",
    "SlideFeaturizer",
    "TileDataset",
    "TileEncoder",
    "build_backbone",
    "build_index",
    "extract_features",
    "get_encoder",
    "list_encoders",
    "load_bags",
    "read_bag",
    "read_he2rna_npy",
    "read_pt_features",
    "resolve_device",
    "write_bag",
]
