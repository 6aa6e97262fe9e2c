"""Save and load fitted models without running code from the file.

A pickle (or joblib) file can run any code when it is loaded, so a model file handed to
you is a program. This module saves models with `skops <https://skops.readthedocs.io>`_
instead: :func:`load_model` reads the file's description of the objects it holds and
builds only types on an explicit list (numpy arrays, Python builtins, scikit-learn's
estimators that skops trusts, and this package's estimators, :data:`TRUSTED_TYPES`).
A file that holds anything else, or that is a pickle, is refused with a one-line error
and nothing from it is run.

Only load models from sources you trust all the same: a model can be trained to give
wrong predictions. To load a skops file that holds other types, after reading them, use
``skops.io.load(path, trusted=[...])`` yourself.

Examples
--------
>>> from he2rna_sklearn.persistence import load_model, save_model
>>> save_model(model, "model.skops", metadata={"genes": genes})  # doctest: +SKIP
>>> model, meta = load_model("model.skops", return_metadata=True)  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

from ._io import atomic_write
from ._torch import ModuleConfigError
from ._version import __version__

__all__ = ["TRUSTED_TYPES", "UntrustedModelError", "load_model", "save_model"]

#: Types of this package that a saved model may hold, beyond those skops trusts by
#: default (Python builtins, numpy arrays and dtypes, scikit-learn's estimators).
#: Anything else in a file is refused.
TRUSTED_TYPES = (
    "he2rna_sklearn.bags._pooling.BagPooling",
    "he2rna_sklearn.bags._supertiles.SuperTiles",
    "he2rna_sklearn.bags._codebook.TileCodebook",
    "he2rna_sklearn.model._linear.ReducedRankRidge",
    "he2rna_sklearn.model._linear.TunedLinearRegressor",
    "he2rna_sklearn.model._regressor.HE2RNARegressor",
    "he2rna_sklearn.model._classifier.HE2RNAClassifier",
    "he2rna_sklearn.model._transfer.HE2RNAEmbedder",
    "he2rna_sklearn.model._paper_transfer.MeanFeatureEmbedder",
    "he2rna_sklearn.model._sequoia.SequoiaRegressor",
    "he2rna_sklearn.model._ensemble.FoldEnsembleRegressor",
)
_FORMAT = "he2rna-sklearn model"
_PICKLE_STARTS = (b"\x80", b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")


class UntrustedModelError(ValueError):
    """A model file holds types outside the trusted list, or is not a safe format."""


def _skops():
    try:
        import skops.io as sio
    except ImportError as exc:  # pragma: no cover - skops is a dependency
        raise ImportError("Saving and loading models needs skops: pip install skops") from exc
    return sio


def save_model(model, path, *, metadata=None):
    """Save a fitted model with skops, atomically.

    Parameters
    ----------
    model : estimator
        E.g. a Pipeline of :class:`~he2rna_sklearn.SuperTiles` and
        :class:`~he2rna_sklearn.HE2RNARegressor`, or scikit-learn steps. A model holding
        types outside the trusted list is refused (nothing is written), since
        :func:`load_model` would refuse it.
    path : str or Path
        The file to write (``.skops`` by convention).
    metadata : dict, optional
        Plain values (str, numbers, lists, dicts) stored beside the model, e.g. the gene
        names.

    Returns
    -------
    path : Path
    """
    sio = _skops()
    payload = {
        "format": _FORMAT,
        "package_version": __version__,
        "metadata": dict(metadata or {}),
        "model": model,
    }
    path = Path(path)
    with atomic_write(path) as tmp:
        try:
            sio.dump(payload, tmp)
        except OSError:
            raise
        except Exception as exc:
            raise ValueError(
                f"Cannot save {type(model).__name__} to '{path}' with skops: {exc}"
            ) from exc
        refused = sorted(set(sio.get_untrusted_types(file=tmp)) - set(TRUSTED_TYPES))
        if refused:  # it could not be loaded: do not write it
            raise ValueError(
                f"Cannot save {type(model).__name__} to '{path}': it holds types that "
                f"load_model does not trust: {refused[:8]}."
            )
    return path


def _not_a_model(path, reason):
    return UntrustedModelError(
        f"'{path}' is not a model saved by he2rna-sklearn ({reason}); it was not loaded. "
        "Fit one with 'he2rna fit' or he2rna_sklearn.persistence.save_model."
    )


def load_model(path, *, return_metadata=False):
    """Load a model saved by :func:`save_model` (or ``he2rna fit``) without running code.

    Parameters
    ----------
    path : str or Path
    return_metadata : bool, default=False
        Also return the metadata saved with the model.

    Returns
    -------
    model : estimator
    metadata : dict
        Only with ``return_metadata=True``; includes ``package_version``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    UntrustedModelError
        If the file is not a skops file (e.g. a pickle or joblib file, never loaded), or
        holds types outside the trusted list; a ``ValueError``.
    """
    sio = _skops()
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"Model '{path}' is a directory, not a model file.")
    if not path.is_file():
        raise FileNotFoundError(f"Model file not found: '{path}'.")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            head = fh.read(8)
        if not head:
            raise _not_a_model(path, "the file is empty")
        if head.startswith(_PICKLE_STARTS):
            raise _not_a_model(
                path,
                "it looks like a pickle or joblib file, which can run code when loaded and "
                "is never loaded here; models of older versions must be fitted again",
            )
        raise _not_a_model(path, "not a skops file")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a zip archive of another kind
        raise _not_a_model(path, f"not a skops file: {type(exc).__name__}") from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise UntrustedModelError(
            f"'{path}' holds types outside the trusted list, so it was not loaded (loading "
            f"them could run code): {refused[:8]}"
            + (f" and {len(refused) - 8} more" if len(refused) > 8 else "")
            + ". Only load models saved by he2rna-sklearn."
        )
    try:
        payload = sio.load(path, trusted=list(untrusted))
    except ModuleConfigError as exc:  # checked before the network is built
        raise UntrustedModelError(
            f"'{path}' was not loaded: {exc} The file is damaged or was crafted; only load "
            "models saved by he2rna-sklearn."
        ) from None
    except Exception as exc:
        message = " ".join(str(exc).split())[:200]
        raise _not_a_model(path, f"{type(exc).__name__}: {message}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise _not_a_model(path, "a skops file of another program")
    saved_version = payload.get("package_version")
    if saved_version != __version__:
        warnings.warn(
            f"Model '{path}' was saved by he2rna-sklearn {saved_version}; this is "
            f"{__version__}. Predictions may differ; fit it again if they look wrong.",
            stacklevel=2,
        )
    model = payload["model"]
    if return_metadata:
        metadata = dict(payload.get("metadata") or {})
        metadata["package_version"] = saved_version
        return model, metadata
    return model
