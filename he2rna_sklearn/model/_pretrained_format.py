"""What a pretrained folder may hold, and the JSON form of an estimator's state in it.

The registry of the classes a folder may name (estimators, networks, pipeline steps: only
those are built when a folder is read) and the encoding of parameters and fitted attributes
as JSON, numeric arrays set apart for ``estimator.safetensors``. Shared by the writer
(:mod:`._pretrained_save`) and the reader (:mod:`._pretrained`) of these folders.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FORMAT", "FORMAT_VERSION", "PRETRAINED_CLASSES"]

#: The ``format`` recorded in ``config.json``.
FORMAT = "he2rna-sklearn-pretrained"
FORMAT_VERSION = 1
_FILES = ("config.json", "model.safetensors", "estimator.safetensors", "genes.txt", "README.md")


# -- the registry: what a folder may name ----------------------------------------------------
# Loading builds only the classes listed here, by name. A new estimator, network or pipeline
# step is one line in the matching function (and its name in PRETRAINED_CLASSES for an
# estimator).
def _estimator_classes():
    """The estimators of :data:`PRETRAINED_CLASSES`: those that inherit
    :class:`~._pretrained.PretrainedMixin` register themselves (they import that module, so
    neither it nor this one imports them), and SequoiaRegressor."""
    from ._sequoia import SequoiaRegressor

    return {**_REGISTERED, "SequoiaRegressor": SequoiaRegressor}


def _module_classes():
    from ._modules import HE2RNAModule
    from ._sequoia_modules import SequoiaModule
    from ._tile_types import TileTypeModule

    return {
        "HE2RNAModule": HE2RNAModule,
        "SequoiaModule": SequoiaModule,
        "TileTypeModule": TileTypeModule,
    }


def _step_classes():
    """Steps a saved Pipeline may hold before its estimator: stateless, parameters only."""
    from ..bags import SuperTiles

    return {"SuperTiles": SuperTiles}


#: The network of folders written before ``module_class`` was recorded.
_DEFAULT_MODULE = {
    "HE2RNARegressor": "HE2RNAModule",
    "HE2RNAClassifier": "HE2RNAModule",
    "SequoiaRegressor": "SequoiaModule",
}

#: The estimator classes :func:`save_pretrained` writes and :func:`from_pretrained` builds.
PRETRAINED_CLASSES = ("HE2RNARegressor", "HE2RNAClassifier", "SequoiaRegressor")
_REGISTERED = {}  # filled by PretrainedMixin.__init_subclass__


# -- JSON encoding of estimator state -------------------------------------------------------
class _Unsaveable(TypeError):
    pass


def _encode(value, key, arrays):
    """A JSON-able form of ``value``; numeric arrays go to ``arrays`` under ``key``."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            arrays[key] = np.ascontiguousarray(value)
            return {"__array__": key}
        if value.dtype.kind in "OUS":
            return {
                "__strings__": [str(v) for v in value.ravel()],
                "dtype": "object" if value.dtype.kind == "O" else value.dtype.str,
                "shape": list(value.shape),
            }
        raise _Unsaveable(f"an array of dtype {value.dtype}")
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, f"{key}/{k}", arrays) for k, v in value.items()}}
    raise _Unsaveable(type(value).__name__)


def _decode(value, arrays):
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]]
    if "__strings__" in value:
        dtype = object if value["dtype"] == "object" else np.dtype(value["dtype"])
        return np.asarray(value["__strings__"], dtype=dtype).reshape(value["shape"])
    if "__float__" in value:
        return float(value["__float__"])
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v, arrays) for k, v in value["__dict__"].items()}
    raise ValueError(f"Unknown value in config.json: {str(value)[:80]}")
