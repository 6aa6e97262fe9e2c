"""Fitted models as Hugging Face-style folders: safetensors, JSON, a gene list, a card.

:func:`save_pretrained` writes a fitted :class:`~he2rna_sklearn.HE2RNARegressor`,
:class:`~he2rna_sklearn.HE2RNAClassifier` or
:class:`~he2rna_sklearn.model.SequoiaRegressor` to a folder that can be shared (e.g.
uploaded with ``hf upload``); :func:`from_pretrained` reads it back, offline, from the folder
or from the Hugging Face cache. Nothing in the folder is a pickle: weights and arrays are
safetensors files, everything else is JSON or text, and only the estimator classes of
:data:`PRETRAINED_CLASSES` are built. :func:`from_pretrained` also reads SEQUOIA's released
checkpoints (see :meth:`~he2rna_sklearn.model.SequoiaRegressor.from_pretrained`).

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

import json
import math
import os
from pathlib import Path

import numpy as np

from .._hub import resolve_snapshot
from .._io import atomic_write
from .._torch import build_checked, safetensors_shapes
from .._version import __version__
from ..bags import feature_spec as bags_feature_spec
from ..bags import spec_to_json

__all__ = [
    "FORMAT",
    "PRETRAINED_CLASSES",
    "PretrainedMixin",
    "check_pretrained_folder",
    "from_pretrained",
    "save_pretrained",
]

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
    :class:`PretrainedMixin` register themselves (they import this module, so it does not
    import them), and SequoiaRegressor."""
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


# -- model card -----------------------------------------------------------------------------
def _fmt(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _fmt_params(params):
    return ", ".join(f"{k}={_decode(v, {})!r}" for k, v in params.items())


def _model_card(name, config, n_genes, metrics, description):
    spec = config.get("feature_spec") or {}
    est = config["estimator"]
    what = f"{n_genes} genes" if n_genes is not None else "classes"
    enc = spec.get("encoder") or "unrecorded"
    lines = [
        "---",
        "library_name: he2rna-sklearn",
        "tags:",
        "- he2rna-sklearn",
        "- histopathology",
        "- gene-expression",
        "- whole-slide-images",
        "---",
        "",
        f"# {name}",
        "",
        f"A fitted `{est}` (he2rna-sklearn {config['package_version']}): it predicts {what} "
        f"from bags of `{enc}` tile features, one bag per whole-slide image.",
        "",
    ]
    if config.get("steps"):
        before = ", then ".join(
            f"`{step['class']}({_fmt_params(step['params'])})`" for step in config["steps"]
        )
        lines += [
            f"It is a scikit-learn Pipeline: {before}, then the `{est}`. `from_pretrained` "
            "returns the whole Pipeline: give it bags of tiles.",
            "",
        ]
    if description:
        lines += [description.strip(), ""]
    lines += [
        "## Use",
        "",
        "```python",
        "from he2rna_sklearn.model import from_pretrained",
        "",
        f'model = from_pretrained("{name}")  # a folder, or a repository id in the HF cache',
        "prediction = model.predict(bags)  # bags: one (n_tiles, n_features) array per slide",
        "```",
        "",
        "Nothing is downloaded at run time and no pickle is read: weights and arrays are "
        "safetensors, the rest JSON and text.",
        "",
        "## Features",
        "",
        "| fact | value |",
        "|---|---|",
    ]
    for key in ("encoder", "weights", "n_features", "mpp", "tile_size"):
        lines.append(f"| {key} | {_fmt(spec.get(key)) if spec.get(key) is not None else '-'} |")
    lines += ["", "## Cross-validated figures", ""]
    if metrics:
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    else:
        lines.append("None were given when the model was saved.")
    lines += ["", "## Files", ""]
    lines += [f"- `{f}`" for f in config["files"]]
    return "\n".join(lines) + "\n"


# -- save -----------------------------------------------------------------------------------
def check_pretrained_folder(folder):
    """Check, before any work, that :func:`save_pretrained` may write ``folder``: a new or
    empty folder, or one it wrote before.

    Raises
    ------
    NotADirectoryError
        If ``folder`` is a file.
    FileExistsError
        If it holds files that are not a model saved by he2rna-sklearn.
    """
    _check_folder(Path(folder))


def _check_folder(folder):
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"'{folder}' is a file; save_pretrained writes a folder.")
    if folder.is_dir():
        present = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
        config = folder / "config.json"
        ours = False
        if config.is_file():
            try:
                ours = json.loads(config.read_text()).get("format") == FORMAT
            except (ValueError, AttributeError):
                ours = False
        if present and not ours:
            raise FileExistsError(
                f"'{folder}' already holds files ({', '.join(sorted(present)[:5])}) that are "
                "not a model saved by he2rna-sklearn; give a new or empty folder."
            )


def _split_pipeline(model):
    """(final estimator, JSON list of the steps before it) of a model or Pipeline."""
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline):
        return model, [], None
    allowed = _step_classes()
    steps = []
    for name, step in model.steps[:-1]:
        kind = type(step).__name__
        if allowed.get(kind) is not type(step):
            raise ValueError(
                f"save_pretrained writes a Pipeline whose steps before the estimator are "
                f"{', '.join(allowed)}; step '{name}' is a {kind}. Save model[-1] alone and "
                "document the steps in description."
            )
        try:
            params = {k: _encode(v, k, {}) for k, v in step.get_params(deep=False).items()}
        except _Unsaveable as exc:
            raise ValueError(
                f"Cannot save the parameters of step '{name}' as JSON ({exc})."
            ) from None
        steps.append({"name": name, "class": kind, "params": params})
    name, final = model.steps[-1]
    return final, steps, name


def save_pretrained(
    estimator,
    folder,
    *,
    bags=None,
    feature_spec=None,
    metrics=None,
    name=None,
    description=None,
):
    """Write a fitted model to a folder in the Hugging Face layout, without pickle.

    Parameters
    ----------
    estimator : HE2RNARegressor, HE2RNAClassifier, SequoiaRegressor or Pipeline
        Fitted. A Pipeline is saved whole when the steps before its estimator are
        :class:`~he2rna_sklearn.SuperTiles` (which learn nothing: their parameters are
        written), e.g. ``make_pipeline(SuperTiles(100), HE2RNARegressor())``;
        :func:`from_pretrained` then returns the Pipeline. Other steps are refused.
    folder : str or Path
        A new or empty folder, or one written before by ``save_pretrained`` (its files are
        replaced).
    bags : sequence of Bag, optional
        The training bags: the feature spec (encoder, weights, dimension, µm/px, tile size)
        is read from their ``meta`` (:func:`~he2rna_sklearn.bags.feature_spec`).
    feature_spec : dict, optional
        The feature spec itself (instead of ``bags``). Default: the estimator's
        ``feature_spec_`` if it has one, else the dimension only.
    metrics : dict, optional
        Cross-validated figures of the fit for the model card, name to value (e.g.
        ``{"mean r, 5-fold by patient": 0.31, "genes with Holm p < 0.05": 552}``).
    name : str, optional
        The model's name on the card (default: the folder's name).
    description : str, optional
        A paragraph for the card (training cohort, targets, preprocessing).

    Returns
    -------
    folder : Path

    Raises
    ------
    ValueError
        If the estimator is of another class, or holds attributes that cannot be written
        as JSON or arrays (nothing is written then).

    Examples
    --------
    >>> from he2rna_sklearn.model import from_pretrained, save_pretrained
    >>> save_pretrained(model, "my-he2rna", bags=train_bags,
    ...                 metrics={"mean r (5-fold)": 0.31})  # doctest: +SKIP
    >>> model = from_pretrained("my-he2rna")  # doctest: +SKIP
    """
    from safetensors.numpy import save_file
    from sklearn.utils.validation import check_is_fitted

    estimator, steps, final_name = _split_pipeline(estimator)
    classes = _estimator_classes()
    cls_name = type(estimator).__name__
    if classes.get(cls_name) is not type(estimator):
        raise ValueError(
            f"save_pretrained writes {', '.join(PRETRAINED_CLASSES)}, alone or after "
            f"SuperTiles in a Pipeline; got {cls_name}."
        )
    check_is_fitted(estimator, "module_")
    module_class = type(estimator.module_).__name__
    if _module_classes().get(module_class) is not type(estimator.module_):
        raise ValueError(f"save_pretrained cannot write a {module_class} network.")
    folder = Path(folder)
    _check_folder(folder)
    params = estimator.get_params(deep=False)
    state = estimator.__getstate__()
    module = state.pop("module_")
    arrays, dropped = {}, []
    enc_params = {}
    for key, value in params.items():
        try:
            enc_params[key] = _encode(value, f"params/{key}", arrays)
        except _Unsaveable:
            if key == "init_from":  # only used by fit; the fitted weights hold its effect
                enc_params[key], dropped = None, [key]
                continue
            raise ValueError(
                f"Cannot save parameter {key}={value!r} of {cls_name} as JSON."
            ) from None
    if any(k.startswith("params/") for k in arrays):
        raise ValueError(f"Cannot save the array parameters of {cls_name} as JSON.")
    attributes = {}
    names = state.pop("gene_names_", None)
    state.pop("feature_spec_", None)
    for key, value in state.items():
        if key in params:
            continue
        try:
            attributes[key] = _encode(value, key, arrays)
        except _Unsaveable as exc:
            raise ValueError(
                f"Cannot save attribute {key} of {cls_name} ({exc}): save_pretrained writes "
                "JSON and arrays only."
            ) from None
    if feature_spec is None and bags is not None:
        feature_spec = bags_feature_spec(bags)
    if feature_spec is None:
        feature_spec = getattr(estimator, "feature_spec_", None)
    if feature_spec is None:
        feature_spec = {"n_features": int(estimator.n_features_in_)}
    feature_spec = spec_to_json(dict(feature_spec))
    if feature_spec.get("n_features") not in (None, int(estimator.n_features_in_)):
        raise ValueError(
            f"The feature spec has n_features={feature_spec['n_features']} but the model "
            f"takes {estimator.n_features_in_}; pass the training bags."
        )
    module_arrays = {k: np.ascontiguousarray(v) for k, v in module["state_dict"].items()}
    files = ["config.json", "model.safetensors", "estimator.safetensors"]
    if names is not None:
        files.append("genes.txt")
        attributes["gene_names_"] = {"__genes__": "genes.txt"}
    files.append("README.md")
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "estimator": cls_name,
        "params": enc_params,
        "dropped_params": dropped,
        "module_class": module_class,
        "module": _encode(dict(module["config"]), "module", {}),
        "steps": steps,
        "final_step": final_name,
        "attributes": attributes,
        "feature_spec": feature_spec,
        "files": files,
    }
    card = _model_card(
        name or folder.resolve().name,
        config,
        None if names is None else len(names),
        metrics,
        description,
    )
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "package_version": __version__}
    with atomic_write(folder / "model.safetensors") as tmp:
        save_file(module_arrays, tmp, metadata=meta)
    with atomic_write(folder / "estimator.safetensors") as tmp:
        save_file(arrays, tmp, metadata=meta)
    if names is not None:
        text = "".join(f"{g}\n" for g in names)
        if any("\n" in str(g) for g in names):
            raise ValueError("Gene names must not hold line breaks.")
        with atomic_write(folder / "genes.txt") as tmp:
            Path(tmp).write_text(text)
    with atomic_write(folder / "README.md") as tmp:
        Path(tmp).write_text(card)
    with atomic_write(folder / "config.json") as tmp:  # last: its presence marks a full save
        Path(tmp).write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")
    return folder


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
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:
        raise ValueError(f"'{config_path}' is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"'{config_path}' does not hold a JSON object.")
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
