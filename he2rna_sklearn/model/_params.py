"""The parameters shared by the HE2RNA estimators: one table of defaults, one of constraints.

As in scikit-learn's ``_BaseRidge`` / ``Ridge``, each estimator spells its parameters out in
its own ``__init__`` signature (``get_params`` and ``clone`` read it), and the shared ones
take their default from :data:`SHARED_DEFAULTS`, so a default is changed here and nowhere
else. :class:`HE2RNARegressor` uses the table as it is; :class:`HE2RNAClassifier` declares
its few departures in ``CLASSIFIER_OVERRIDES`` (``_classifier.py``), with the reason.
"""

from __future__ import annotations

import numbers
from types import MappingProxyType

import torch
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from ._modules import ACTIVATIONS, KS_DEFAULT

__all__ = ["AUTO_LR", "NETWORK_CONSTRAINTS", "SHARED_DEFAULTS", "store_params"]

#: ``lr="auto"``: Adam's learning rate per network, as ``benchmarks/fidelity.py`` measured it
#: from the closed-form starts (the tile-type network reaches the same genes in a quarter of
#: the epochs at 1e-3; the paper's network, from its ridge start, fine-tunes best at 1e-4).
AUTO_LR = MappingProxyType({"TileTypeModule": 1e-3, "HE2RNAModule": 1e-4})

#: Defaults of the parameters shared by :class:`HE2RNARegressor` and
#: :class:`HE2RNAClassifier` (read-only). Where they depart from the paper, and why, is
#: told in :class:`HE2RNARegressor`'s docstring; :data:`PAPER_SETTINGS` holds the paper's.
SHARED_DEFAULTS = MappingProxyType(
    {
        "hidden_layer_sizes": (256, 256),
        "activation": "relu",
        "dropout": 0.0,
        "standardize": True,
        "ks": KS_DEFAULT,
        "k_training": "average",
        "init_from": None,
        "max_epochs": 200,
        "batch_size": 16,
        "lr": "auto",
        "weight_decay": 0.0,
        "patience": 20,
        "validation_fraction": 0.1,
        "device": "auto",
        "max_batch_tiles": 65536,
        "num_workers": 0,
        "random_state": None,
        "verbose": 0,
    }
)

#: Constraints of the shared parameters (scikit-learn's parameter validation).
NETWORK_CONSTRAINTS = {
    "hidden_layer_sizes": ["array-like"],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
    "standardize": ["boolean"],
    "ks": ["array-like"],
    "k_training": [StrOptions({"average", "random"})],
    "init_from": [HasMethods(["fit"]), None],
    "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
    "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    "lr": [Interval(numbers.Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
    "patience": [Interval(numbers.Integral, 1, None, closed="left")],
    "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither"), None],
    "device": [str, torch.device],
    "max_batch_tiles": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "num_workers": [Interval(numbers.Integral, 0, None, closed="left")],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


def store_params(estimator, arguments):
    """Store ``estimator.__init__``'s ``arguments`` (its ``locals()``) as attributes.

    scikit-learn's ``__init__`` stores its parameters and does nothing else; their names
    come from the signature (``_get_param_names``), so they are written once, there.
    """
    for name in estimator._get_param_names():
        setattr(estimator, name, arguments[name])
