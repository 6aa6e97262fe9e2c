"""he2rna-sklearn: predict tumour gene expression from H&E whole-slide images.

The HE2RNA method (Schmauch et al., Nature Communications 2020) as scikit-learn
estimators. The data flows through one subpackage per stage::

    slides -> features -> bags -> model -> outputs (metrics, spatial) -> cli

Examples
--------
>>> from he2rna_sklearn import SlideFeaturizer, SuperTiles, HE2RNARegressor
>>> from sklearn.pipeline import make_pipeline
>>> model = make_pipeline(SuperTiles(n_clusters=100), HE2RNARegressor(random_state=0))
"""

from ._version import __version__
from .bags import Bag, BagPooling, SuperTiles, TileCodebook
from .features import SlideFeaturizer, load_bags
from .model import (
    FoldEnsembleRegressor,
    HE2RNAClassifier,
    HE2RNAEmbedder,
    HE2RNARegressor,
    MeanFeatureEmbedder,
    SequoiaRegressor,
    TunedLinearRegressor,
    load_sequoia,
)

__all__ = [
    "Bag",
    "BagPooling",
    "FoldEnsembleRegressor",
    "HE2RNAClassifier",
    "HE2RNAEmbedder",
    "HE2RNARegressor",
    "MeanFeatureEmbedder",
    "SequoiaRegressor",
    "SlideFeaturizer",
    "SuperTiles",
    "TileCodebook",
    "TunedLinearRegressor",
    "__version__",
    "load_bags",
    "load_sequoia",
]
