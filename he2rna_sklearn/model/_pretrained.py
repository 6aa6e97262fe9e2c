"""Fitted models as Hugging Face-style folders: safetensors, JSON, a gene list, a card.

:func:`save_pretrained` writes a fitted :class:`~he2rna_sklearn.HE2RNARegressor`,
:class:`~he2rna_sklearn.HE2RNAClassifier` or
:class:`~he2rna_sklearn.model.SequoiaRegressor` to a folder that can be shared (e.g.
uploaded with ``hf upload``); :func:`from_pretrained` reads it back, offline, from the folder
or from the Hugging Face cache. Nothing in the folder is a pickle: weights and arrays are
safetensors files, everything else is JSON or text, and only the estimator classes of
:data:`PRETRAINED_CLASSES` are built. :func:`from_pretrained` also reads SEQUOIA's released
checkpoints (see :meth:`~he2rna_sklearn.model.SequoiaRegressor.from_pretrained`).

This module reads folders and gives the estimators their ``save_pretrained`` and
``from_pretrained`` methods (:class:`PretrainedMixin`); :func:`save_pretrained` is written in
:mod:`._pretrained_save`, and what a folder may name and the JSON form of an estimator's
state in :mod:`._pretrained_format`.

A folder holds:

``config.json``
    The format, the package version, the estimator class, its parameters, the module's
    architecture, the fitted attributes that are not arrays, and the feature spec (encoder,
    weights, dimension, µm/px, tile size) of the features the model takes.
``model.safetensors``
    The network's weights, under the module's own state-dict names.
``estimator.safetensors``
    The fitted arrays of the estimator (target standardisation, history, ...).
``genes.txt``
    The genes, one per line, in output order (regressors).
``README.md``
    A short model card: what the model predicts, from which features, how to load it, and
    cross-validated figures when given.
"""

from __future__ import annotations

import os

import numpy as np

from .._hub import read_json_object, resolve_snapshot
from .._torch import build_checked, safetensors_shapes
from .._version import __version__
from ._pretrained_format import (
    _DEFAULT_MODULE,
    _REGISTERED,
    FORMAT,
    FORMAT_VERSION,
    PRETRAINED_CLASSES,
    _decode,
    _estimator_classes,
    _module_classes,
    _step_classes,
)
from ._pretrained_save import check_pretrained_folder, save_pretrained

__all__ = [
    "FORMAT",
    "PRETRAINED_CLASSES",
    "PretrainedMixin",
    "check_pretrained_folder",
    "from_pretrained",
    "save_pretrained",
]


# -- load -----------------------------------------------------------------------------------
def from_pretrained(source, *, revision=None, cache_dir=None, genes=None, device=None):
    """Load a model folder (or cached Hugging Face repository), offline, without pickle.

    Reads folders written by :func:`save_pretrained` and SEQUOIA's released checkpoints
    (``config.json`` with SEQUOIA's keys and ``model.safetensors``).

    Parameters
    ----------
    source : str or Path
        A folder, or a repository id (``org/name``) in the Hugging Face cache.
    revision : str, optional
        Branch, tag or commit of a cached repository.
    cache_dir : str or Path, optional
        The Hugging Face hub cache (default: the environment's).
    genes : sequence of str or path, optional
        For SEQUOIA checkpoints only, which hold no gene names (see
        :meth:`~he2rna_sklearn.model.SequoiaRegressor.from_pretrained`).
    device : str, optional
        Overrides the saved ``device`` parameter.

    Returns
    -------
    model : HE2RNARegressor, HE2RNAClassifier, SequoiaRegressor or Pipeline
        Fitted, with ``feature_spec_`` (the features it takes, checked at ``predict``) and
        ``source_``; a Pipeline (e.g. ``SuperTiles`` then the estimator) if one was saved.

    Raises
    ------
    WeightsNotFoundError
        If ``source`` is neither a folder nor in the cache, saying how to get it.
    ValueError
        If a file is not of this format, names an estimator class outside
        :data:`PRETRAINED_CLASSES`, or its weights do not fit the architecture.

    Examples
    --------
    >>> from he2rna_sklearn.model import from_pretrained
    >>> model = from_pretrained("my-he2rna")  # doctest: +SKIP
    """
    return _from_pretrained(source, revision, cache_dir, genes, device)


def _from_pretrained(source, revision, cache_dir, genes, device, expected=None):
    """:func:`from_pretrained`; with ``expected`` (a class), a folder holding anything else
    is refused before it is built."""
    snapshot = resolve_snapshot(source, revision=revision, cache_dir=cache_dir)
    config_path = snapshot.file("config.json")
    config = read_json_object(config_path)
    if expected is not None:
        _check_expected(config, expected, snapshot.source)
    if "format" not in config and "input_dim" in config and "num_outputs" in config:
        from ._sequoia import SequoiaRegressor

        return SequoiaRegressor.from_pretrained(
            source, genes=genes, revision=revision, cache_dir=cache_dir, device=device or "auto"
        )
    if config.get("format") != FORMAT:
        raise ValueError(
            f"'{config_path}' is not a model saved by he2rna-sklearn (format "
            f"{config.get('format')!r}) nor a SEQUOIA checkpoint."
        )
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{snapshot.source} was saved in format version {config['format_version']} by "
            f"he2rna-sklearn {config.get('package_version')}; this is {__version__}: upgrade."
        )
    if genes is not None:
        raise ValueError(
            f"genes= applies to SEQUOIA checkpoints; {snapshot.source} carries its gene list."
        )
    classes = _estimator_classes()
    cls_name = config.get("estimator")
    if not isinstance(cls_name, str) or cls_name not in classes:
        raise ValueError(
            f"{snapshot.source} names estimator {cls_name!r}; from_pretrained builds only "
            f"{', '.join(PRETRAINED_CLASSES)}."
        )
    cls = classes[cls_name]
    module_name = config.get("module_class", _DEFAULT_MODULE[cls_name])
    module_cls = _module_classes().get(module_name) if isinstance(module_name, str) else None
    if module_cls is None:
        raise ValueError(
            f"{snapshot.source} names network {module_name!r}; from_pretrained builds only "
            f"{', '.join(_module_classes())}."
        )
    steps = _build_steps(config.get("steps") or [], snapshot.source)
    from safetensors.numpy import load_file

    arrays = load_file(os.fspath(snapshot.file("estimator.safetensors")))
    weights_path = snapshot.file("model.safetensors")
    params = {k: _decode(v, arrays) for k, v in config["params"].items()}
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise ValueError(
            f"{snapshot.source} holds parameters that {cls_name} of he2rna-sklearn "
            f"{__version__} does not take ({exc}); it was saved by "
            f"{config.get('package_version')}."
        ) from None
    if device is not None:
        estimator.set_params(device=device)
    attributes = {}
    for key, value in config["attributes"].items():
        if isinstance(value, dict) and "__genes__" in value:
            path = snapshot.file(value["__genes__"])
            names = path.read_text().splitlines()
            attributes[key] = np.asarray(names, dtype=object)
        else:
            attributes[key] = _decode(value, arrays)
    module_config = _decode(config["module"], {})
    module = _build_module(module_cls, module_config, weights_path, snapshot.source)
    state = {**estimator.__dict__, **attributes, "module_": module}
    estimator.__setstate__(state)
    n_out = getattr(estimator, "n_outputs_", None)
    if n_out is not None and len(getattr(estimator, "gene_names_", ())) != n_out:
        raise ValueError(
            f"{snapshot.source}: genes.txt lists {len(estimator.gene_names_)} genes but the "
            f"model has {n_out} outputs."
        )
    estimator.feature_spec_ = config.get("feature_spec")
    estimator.source_ = snapshot.source
    if not steps:
        return estimator
    from sklearn.pipeline import Pipeline

    for _, step in steps:  # fitted as in the saved Pipeline: they check the features
        step.n_features_in_ = estimator.n_features_in_
        step.feature_spec_ = estimator.feature_spec_
    final = config.get("final_step") or cls_name.lower()
    return Pipeline([*steps, (str(final), estimator)])


def _check_expected(config, expected, source):
    held = config.get("estimator") if config.get("format") == FORMAT else "a SEQUOIA checkpoint"
    if config.get("steps"):
        kinds = [str(step.get("class")) for step in config["steps"] if isinstance(step, dict)]
        held = f"a Pipeline ({', '.join([*kinds, str(held)])})"
    if held != expected.__name__:
        raise ValueError(
            f"{source} holds {held}, not a {expected.__name__}: load it with "
            "he2rna_sklearn.model.from_pretrained, which builds what it holds."
        )


class PretrainedMixin:
    """``save_pretrained`` and ``from_pretrained`` as methods of the HE2RNA estimators.

    They delegate to :func:`save_pretrained` and :func:`from_pretrained` of
    ``he2rna_sklearn.model``. A class of this package named in :data:`PRETRAINED_CLASSES`
    that inherits this mixin is registered, by name, as one :func:`from_pretrained` builds.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__name__ in PRETRAINED_CLASSES and cls.__module__.startswith(__package__ + "."):
            _REGISTERED.setdefault(cls.__name__, cls)

    def save_pretrained(
        self, folder, *, bags=None, feature_spec=None, metrics=None, name=None, description=None
    ):
        """Write this fitted model to a folder in the Hugging Face layout, without pickle.

        ``config.json``, ``model.safetensors``, ``estimator.safetensors``, ``genes.txt``
        (regressors) and a ``README.md`` model card; see
        :func:`he2rna_sklearn.model.save_pretrained`, which takes the same arguments (and
        Pipelines of :class:`~he2rna_sklearn.SuperTiles` and a model).

        Parameters
        ----------
        folder : str or Path
            A new or empty folder, or one written before by ``save_pretrained``.
        bags : sequence of Bag, optional
            The training bags, for the feature spec (default: ``feature_spec_``, recorded
            in ``fit``).
        feature_spec : dict, optional
        metrics : dict, optional
            Cross-validated figures for the card.
        name : str, optional
        description : str, optional

        Returns
        -------
        folder : Path

        Examples
        --------
        >>> model.save_pretrained("he2rna-coad", metrics={"mean r": 0.31})  # doctest: +SKIP
        >>> model = HE2RNARegressor.from_pretrained("he2rna-coad")  # doctest: +SKIP
        """
        return save_pretrained(
            self,
            folder,
            bags=bags,
            feature_spec=feature_spec,
            metrics=metrics,
            name=name,
            description=description,
        )

    @classmethod
    def from_pretrained(cls, source, *, revision=None, cache_dir=None, device=None):
        """A fitted model of this class from a folder or the Hugging Face cache, offline.

        See :func:`he2rna_sklearn.model.from_pretrained`. A folder holding another class,
        or a Pipeline, is refused before anything is built (load those with
        :func:`he2rna_sklearn.model.from_pretrained`).

        Parameters
        ----------
        source : str or Path
            A folder written by ``save_pretrained``, or a repository id (``org/name``) in
            the Hugging Face cache.
        revision : str, optional
            Branch, tag or commit of a cached repository.
        cache_dir : str or Path, optional
            The Hugging Face hub cache (default: the environment's).
        device : str, optional
            Overrides the saved ``device`` parameter.

        Returns
        -------
        model
            Fitted, of this class, with ``feature_spec_`` and ``source_``.

        Examples
        --------
        >>> from he2rna_sklearn import HE2RNARegressor
        >>> model = HE2RNARegressor.from_pretrained("he2rna-coad")  # doctest: +SKIP
        """
        return _from_pretrained(source, revision, cache_dir, None, device, expected=cls)


def _build_steps(saved, source):
    """The Pipeline steps before the estimator, built from their class names and JSON
    parameters (only :func:`_step_classes`)."""
    allowed = _step_classes()
    steps = []
    if not isinstance(saved, list):
        raise ValueError(f"{source}: 'steps' in config.json is not a list.")
    for step in saved:
        kind = step.get("class") if isinstance(step, dict) else None
        if kind not in allowed:
            raise ValueError(
                f"{source} names a pipeline step {kind!r}; from_pretrained builds only "
                f"{', '.join(allowed)}."
            )
        params = {k: _decode(v, {}) for k, v in (step.get("params") or {}).items()}
        try:
            built = allowed[kind](**params)
            built._validate_params()
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{source}: step {kind} has parameters that do not fit ({exc})."
            ) from None
        steps.append((str(step.get("name") or kind.lower()), built))
    return steps


def _build_module(module_cls, config, weights_path, source):
    """The module of ``config`` with the weights of ``weights_path`` loaded strictly.

    The config is checked against the tensor shapes in the file's header before anything
    is built or read (:func:`~he2rna_sklearn._torch.build_checked`): a config that asks
    for more than its weights hold is refused in one line.
    """
    import torch
    from safetensors.numpy import load_file

    shapes = safetensors_shapes(weights_path)
    module = build_checked(lambda c: module_cls(**c), config, shapes, source)
    weights = load_file(os.fspath(weights_path))
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
    return module.eval()
