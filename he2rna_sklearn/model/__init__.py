"""Stage 4 of the data flow: the model.

Torch modules (per-tile MLP, masked top-k pooling), the skorch glue (bag datasets,
padding, per-batch k draws) and the scikit-learn estimators.
"""

from ._classifier import HE2RNAClassifier
from ._ensemble import FoldEnsembleRegressor
from ._modules import (
    KS_ALL_TILES,
    KS_DEFAULT,
    KS_SUPER_TILES,
    HE2RNAModule,
    masked_mean,
    top_k_mean,
)
from ._net import BagDataset, BagNet, collate_bags
from ._paper_transfer import MeanFeatureEmbedder, mean_tile_features
from ._pretrained import from_pretrained, save_pretrained
from ._regressor import HE2RNARegressor
from ._sequoia import SEQUOIA_CANCERS, SEQUOIA_FEATURE_SPEC, SequoiaRegressor, load_sequoia
from ._sequoia_modules import SequoiaModule
from ._settings import PAPER_SETTINGS
from ._transfer import HE2RNAEmbedder

__all__ = [
    "BagDataset",
    "BagNet",
    "FoldEnsembleRegressor",
    "HE2RNAClassifier",
    "HE2RNAEmbedder",
    "HE2RNAModule",
    "HE2RNARegressor",
    "KS_ALL_TILES",
    "KS_DEFAULT",
    "KS_SUPER_TILES",
    "MeanFeatureEmbedder",
    "PAPER_SETTINGS",
    "SEQUOIA_CANCERS",
    "SEQUOIA_FEATURE_SPEC",
    "SequoiaModule",
    "SequoiaRegressor",
    "collate_bags",
    "from_pretrained",
    "load_sequoia",
    "masked_mean",
    "mean_tile_features",
    "save_pretrained",
    "top_k_mean",
]
