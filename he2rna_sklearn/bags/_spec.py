"""The feature spec of bags: which encoder made the features, at what resolution.

A model is only right on features like those it was trained on. :func:`feature_spec` reads
the facts that bags carry in their ``meta`` (as :class:`~he2rna_sklearn.SlideFeaturizer`
and :func:`~he2rna_sklearn.features.read_bag` record them) into a small JSON-able dict, and
:func:`check_feature_spec` compares bags with a stored spec, with a one-line error naming
the bag and the fact that differs. Facts a bag does not carry (plain arrays, other tools'
files) are not checked; the feature dimension always is.

Every estimator of this package that learns from bags records the spec of its training bags
as ``feature_spec_`` (:func:`fitted_feature_spec`) and checks the bags it is given after
fitting against it (:func:`check_fitted_bags`). Plain arrays carry no spec: a model fitted
on them records only the dimension, and arrays given to a fitted model are checked for their
dimension only.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ._validation import bag_label, check_bags

__all__ = [
    "FEATURE_SPEC_KEYS",
    "check_feature_spec",
    "check_fitted_bags",
    "feature_spec",
    "fitted_feature_spec",
    "same_encoder",
    "spec_to_json",
]

#: How far apart the µm/px of training bags may be and still make one training set: a
#: slide within 10% of the requested resolution is read at its own (slides/_tiling.py's
#: MPP_TOLERANCE), and an index mixes no features further apart (features/_index.py).
_TRAINING_RTOL = 0.1

#: The facts of a feature spec: encoder name, weights id, feature dimension, resolution of
#: the pixels the encoder saw (µm/px) and tile side in those pixels.
FEATURE_SPEC_KEYS = ("encoder", "weights", "n_features", "mpp", "tile_size")

# Other names of the same encoders, as other tools write them (TRIDENT, STAMP, eva, timm).
_ALIASES = {
    "mahmoodlab/uni": "uni",
    "uni_v1": "uni",
    "uni-v1": "uni",
    "mahmood_uni": "uni",
    "mahmood-uni": "uni",
    "mahmoodlab/uni2-h": "uni2-h",
    "uni_v2": "uni2-h",
    "uni2_h": "uni2-h",
    "mahmood_uni2_h": "uni2-h",
}


def _normal(text):
    """Case, spaces and the separators ``_ - .`` aside (as ``features.normalize_name``)."""
    return re.sub(r"[\s_.\-]+", "", str(text).lower())


_NORMAL_ALIASES = {_normal(k): _normal(v) for k, v in _ALIASES.items()}


def _encoder_name(name):
    if name is None:
        return None
    text = str(name).strip().lower()
    for prefix in ("encoder:", "hf-hub:", "hf_hub:", "timm:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = _normal(text)
    return _NORMAL_ALIASES.get(text, text)


def same_encoder(a, b):
    """Whether two encoder names denote one encoder (case, ``hf-hub:`` prefix and the
    names other tools give UNI and UNI2-h aside)."""
    return _encoder_name(a) == _encoder_name(b)


def _weights_kind(weights):
    """``random-init(seed=N)`` stays as it is (its seed matters); any other weights id is
    "published" (the same weights may come from the cache or from a copied file)."""
    if weights is None:
        return None
    text = str(weights)
    return text if text.startswith("random-init") else "published"


def _bag_facts(bag):
    meta = getattr(bag, "meta", None) or {}
    encoder = next((meta[k] for k in ("backbone", "encoder", "extractor") if meta.get(k)), None)
    facts = {
        "encoder": None if encoder is None else str(encoder),
        "weights": None if meta.get("weights") is None else str(meta["weights"]),
        "n_features": int(bag.shape[1]),
        "mpp": None if meta.get("mpp") is None else float(meta["mpp"]),
        "tile_size": None if meta.get("tile_size") is None else int(meta["tile_size"]),
    }
    return facts


def feature_spec(bags):
    """The feature spec shared by ``bags``: what to store with a model trained on them.

    Parameters
    ----------
    bags : sequence of Bag or array-like
        Training bags. Facts missing from every bag's ``meta`` are None.

    Returns
    -------
    spec : dict
        ``encoder``, ``weights``, ``n_features``, ``mpp``, ``tile_size`` (JSON-able).

    Raises
    ------
    ValueError
        If the bags disagree among themselves (features of two encoders, or resolutions
        more than 10% apart, in one training set). The spec keeps the first bag's µm/px.

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn import Bag
    >>> from he2rna_sklearn.bags import feature_spec
    >>> bag = Bag(np.zeros((3, 4)), meta={"backbone": "uni", "mpp": 0.5, "tile_size": 224})
    >>> feature_spec([bag])
    {'encoder': 'uni', 'weights': None, 'n_features': 4, 'mpp': 0.5, 'tile_size': 224}
    """
    spec = dict.fromkeys(FEATURE_SPEC_KEYS)
    seen = {}
    for i, bag in enumerate(bags):
        for key, value in _bag_facts(bag).items():
            if value is None:
                continue
            if spec[key] is None:
                spec[key], seen[key] = value, i
            elif not _agrees(key, spec[key], value, rtol=_TRAINING_RTOL):
                raise ValueError(
                    f"The bags disagree on their features: {bag_label(bag, i)} has {key}="
                    f"{value!r} but bag {seen[key]} has {spec[key]!r}; train on features of "
                    "one encoder at one resolution."
                )
    return spec


def _agrees(key, expected, got, rtol):
    if key == "encoder":
        return same_encoder(expected, got)
    if key == "weights":
        return _weights_kind(expected) == _weights_kind(got)
    if key == "mpp":
        return math.isclose(float(expected), float(got), rel_tol=rtol)
    return expected == got


def check_feature_spec(bags, spec, *, rtol=0.2, what="This model"):
    """Check bags against a stored feature spec; a one-line error on the first mismatch.

    The encoder is compared by name (aliases of other tools allowed), the weights only as
    random (with their seed) or published, the dimension exactly, and the resolution
    within ``rtol``: the µm/px, and the tile's field of view (``mpp * tile_size``, µm),
    so that a model trained at 20x refuses 40x features. A fact a bag does not carry is
    not checked.

    Parameters
    ----------
    bags : sequence of Bag or array-like
    spec : dict or None
        A spec from :func:`feature_spec` (None checks nothing).
    rtol : float, default=0.2
        Relative tolerance on the resolution and field of view.
    what : str
        The model, named in the error.

    Raises
    ------
    ValueError
        On the first bag that differs, naming it, the fact, both values and what to do.

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn import Bag
    >>> from he2rna_sklearn.bags import check_feature_spec
    >>> spec = {"encoder": "uni", "n_features": 4, "mpp": 0.5, "tile_size": 224}
    >>> bag = Bag(np.zeros((3, 4)), meta={"backbone": "resnet50"})
    >>> check_feature_spec([bag], spec)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    ValueError: This model takes features of encoder 'uni' but bag 0 has 'resnet50' features
    """
    if not spec:
        return
    for i, bag in enumerate(bags):
        facts = _bag_facts(bag)
        label = bag_label(bag, i)
        expected_d = spec.get("n_features")
        if expected_d is not None and facts["n_features"] != int(expected_d):
            encoder = f" ({spec['encoder']})" if spec.get("encoder") else ""
            raise ValueError(
                f"{what} takes {expected_d} features per tile{encoder} but {label} has "
                f"{facts['n_features']}: extract features with the same encoder."
            )
        if spec.get("encoder") and facts["encoder"]:
            if not same_encoder(spec["encoder"], facts["encoder"]):
                raise ValueError(
                    f"{what} takes features of encoder '{spec['encoder']}' but {label} has "
                    f"'{facts['encoder']}' features (meta['backbone']): extract features "
                    f"with SlideFeaturizer(backbone='{spec['encoder']}')."
                )
        if spec.get("weights") and facts["weights"]:
            if _weights_kind(spec["weights"]) != _weights_kind(facts["weights"]):
                raise ValueError(
                    f"{what} takes features of {_weights_kind(spec['weights'])} weights "
                    f"({spec['weights']}) but {label} was made with {facts['weights']}: use "
                    "the same encoder weights."
                )
        mpp, got_mpp = spec.get("mpp"), facts["mpp"]
        if mpp and got_mpp and not math.isclose(mpp, got_mpp, rel_tol=rtol):
            raise ValueError(
                f"{what} takes tiles at {mpp:.3g} µm/px but {label} was tiled at "
                f"{got_mpp:.3g} µm/px: featurize at mpp={mpp:.3g}."
            )
        tile, got_tile = spec.get("tile_size"), facts["tile_size"]
        if mpp and got_mpp and tile and got_tile:
            fov, got_fov = mpp * tile, got_mpp * got_tile
            if not math.isclose(fov, got_fov, rel_tol=rtol):
                raise ValueError(
                    f"{what} takes tiles of {fov:.0f} µm ({tile} px at {mpp:.3g} µm/px) but "
                    f"{label} has tiles of {got_fov:.0f} µm ({got_tile} px at {got_mpp:.3g}): "
                    f"featurize with tile_size={tile}, mpp={mpp:.3g}."
                )


def spec_to_json(spec):
    """A spec with numpy scalars turned into Python values (for config files)."""
    if spec is None:
        return None
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in spec.items()}


def fitted_feature_spec(bags):
    """The spec an estimator records as ``feature_spec_`` when it is fitted on ``bags``.

    :func:`feature_spec` in JSON-able form. ``bags`` are checked bags (see
    :func:`~he2rna_sklearn.bags.check_bags`); bags of two encoders or resolutions are an
    error, before any training.

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn import Bag
    >>> from he2rna_sklearn.bags import fitted_feature_spec
    >>> fitted_feature_spec([Bag(np.zeros((3, 4)), meta={"backbone": "resnet18"})])["encoder"]
    'resnet18'
    """
    return spec_to_json(feature_spec(bags))


def check_fitted_bags(estimator, X, *, name="X", check_finite=True):
    """Bags given to a fitted estimator, checked against the features it was fitted on.

    First the estimator's ``feature_spec_`` (encoder, weights, µm/px, tile size: see
    :func:`check_feature_spec`), so that features of another encoder are named as such even
    when their dimension is the same; then its ``n_features_in_`` and the values
    (:func:`~he2rna_sklearn.bags.check_bags`). An estimator without ``feature_spec_`` (one
    saved by an older version) is checked for its dimension only, and so are plain arrays,
    which carry no spec.

    Parameters
    ----------
    estimator : estimator
        Fitted; its ``feature_spec_`` and ``n_features_in_`` are read when present.
    X : sequence of bags
    name : str
        The parameter name used in messages.
    check_finite : bool
        Reject non-finite (or overflowing) features in in-memory bags.

    Returns
    -------
    bags : list

    Raises
    ------
    ValueError
        A one-line error naming the first bag (and slide) that differs, the fact and what
        to do.

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn import Bag, BagPooling
    >>> from he2rna_sklearn.bags import check_fitted_bags
    >>> pool = BagPooling().fit([Bag(np.zeros((3, 4)), meta={"backbone": "resnet18"})])
    >>> new = [Bag(np.zeros((2, 4)), meta={"backbone": "resnet34"})]
    >>> check_fitted_bags(pool, new)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    ValueError: BagPooling takes features of encoder 'resnet18' but bag 0 has 'resnet34'
    """
    bags, _ = check_bags(X, name=name, check_finite=False)
    spec = dict(getattr(estimator, "feature_spec_", None) or {})
    spec.pop("n_features", None)  # the dimension: check_bags' message, below
    check_feature_spec(bags, spec, what=type(estimator).__name__)
    n_features = getattr(estimator, "n_features_in_", None)
    bags, _ = check_bags(bags, n_features=n_features, name=name, check_finite=check_finite)
    return bags
