"""Stage 4 of the data flow: the model.

Torch modules (the tile-type network; the per-tile MLP with masked top-k pooling), the
skorch glue (bag datasets, padding, per-batch k draws) and the scikit-learn estimators.
One job per module:

* ``_modules``: the per-tile MLP with top-k pooling; ``_tile_types``: the tile-type
  network (soft codebook, pooled type fractions, low-rank readout) and its closed-form
  start; ``_net``: bag datasets, padding, the skorch net;
* ``_linear``: reduced-rank ridge and the tuned linear baseline (ridge, PCA-r + ridge or
  reduced-rank ridge chosen by inner CV);
* ``_params``: the shared parameters' defaults (one table) and constraints;
  ``_settings``: the paper's settings;
* ``_training``: seeds, the validation split, ``TrainingOptions``, early stopping from a
  warm start; ``_base``: ``BaseHE2RNA``, the training run and inference;
* starts: ``_warm_start`` (the closed-form ridge start), ``_init_from`` (from a fitted
  model);
* heads: ``_regressor`` (with ``_targets``: target checks and scores), ``_classifier``;
* embedders: ``_transfer`` (``HE2RNAEmbedder``), ``_paper_transfer``
  (``MeanFeatureEmbedder``, with ``_mean_features``).

A new head subclasses ``BaseHE2RNA``: it encodes its targets, builds its
``TrainingOptions`` and calls ``_fit_net``, and overrides ``_start_module`` to start
elsewhere than PyTorch's random initialisation.
"""

from ._classifier import HE2RNAClassifier
from ._ensemble import FoldEnsembleRegressor
from ._linear import ReducedRankRidge, TunedLinearRegressor
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
from ._pretrained import check_pretrained_folder, from_pretrained, save_pretrained
from ._regressor import HE2RNARegressor
from ._sequoia import SequoiaRegressor, load_sequoia
from ._sequoia_checkpoint import SEQUOIA_CANCERS, SEQUOIA_FEATURE_SPEC
from ._sequoia_modules import SequoiaModule
from ._settings import PAPER_SETTINGS
from ._tile_types import TileTypeModule
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
    "ReducedRankRidge",
    "SEQUOIA_CANCERS",
    "SEQUOIA_FEATURE_SPEC",
    "SequoiaModule",
    "SequoiaRegressor",
    "TileTypeModule",
    "TunedLinearRegressor",
    "collate_bags",
    "check_pretrained_folder",
    "from_pretrained",
    "load_sequoia",
    "masked_mean",
    "mean_tile_features",
    "save_pretrained",
    "top_k_mean",
]
