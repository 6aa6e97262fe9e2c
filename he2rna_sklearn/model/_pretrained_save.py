"""Writing a fitted model to a Hugging Face-style folder: :func:`save_pretrained`.

The folder's files are described in :mod:`._pretrained`, which reads them back. Weights and
arrays are written as safetensors, the rest as JSON and text, each file atomically and
``config.json`` last (its presence marks a whole save), with a model card (``README.md``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._io import atomic_write
from .._version import __version__
from ..bags import feature_spec as bags_feature_spec
from ..bags import spec_to_json
from ._pretrained_format import (
    FORMAT,
    FORMAT_VERSION,
    PRETRAINED_CLASSES,
    _decode,
    _encode,
    _estimator_classes,
    _module_classes,
    _step_classes,
    _Unsaveable,
)

__all__ = ["check_pretrained_folder", "save_pretrained"]


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
