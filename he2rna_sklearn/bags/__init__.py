"""Stage 3 of the data flow: bags.

A bag is one slide's tile features. This stage validates sequences of bags and reduces
them to super-tiles, to one pooled vector per slide, or to each slide's fractions of
learnt tile types (:class:`TileCodebook`).
"""

from ._bag import Bag
from ._codebook import SQRT_EPS, TileCodebook, sample_tiles
from ._pooling import BagPooling
from ._spec import (
    check_feature_spec,
    check_fitted_bags,
    feature_spec,
    fitted_feature_spec,
    spec_to_json,
)
from ._supertiles import SuperTiles
from ._validation import (
    MAX_ABS_FEATURE,
    bag_label,
    check_bags,
    check_finite_bag,
    check_finite_outputs,
    is_lazy,
)

__all__ = [
    "MAX_ABS_FEATURE",
    "Bag",
    "BagPooling",
    "SQRT_EPS",
    "SuperTiles",
    "TileCodebook",
    "bag_label",
    "check_bags",
    "check_feature_spec",
    "check_finite_bag",
    "check_finite_outputs",
    "check_fitted_bags",
    "feature_spec",
    "fitted_feature_spec",
    "spec_to_json",
    "is_lazy",
    "sample_tiles",
]
