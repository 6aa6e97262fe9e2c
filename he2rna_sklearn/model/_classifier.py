"""HE2RNAClassifier: a multiple-instance classifier with HE2RNA's per-tile MLP and top-k."""

from __future__ import annotations

import numbers
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch
from sklearn.base import ClassifierMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target

from ..bags import check_bags
from ._base import BaseHE2RNA
from ._init_from import copy_hidden_layers
from ._modules import KS_SUPER_TILES
from ._params import NETWORK_CONSTRAINTS, SHARED_DEFAULTS, store_params
from ._targets import check_row_order
from ._training import TrainingOptions, validation_split

__all__ = ["CLASSIFIER_OVERRIDES", "HE2RNAClassifier"]

#: Where the classifier's defaults depart from the shared ones (``_params.SHARED_DEFAULTS``).
#: It has no closed-form start, so it keeps the paper's recipe for training from a random
#: start (super-tiles ks, one k drawn per batch, dropout 0.25, Adam at 3e-4); its numbers
#: were tuned and tested with these.
CLASSIFIER_OVERRIDES = MappingProxyType(
    {"dropout": 0.25, "ks": KS_SUPER_TILES, "k_training": "random", "lr": 3e-4}
)
_D = {**SHARED_DEFAULTS, **CLASSIFIER_OVERRIDES}


def _label_kind(value):
    if isinstance(value, (str, bytes)):
        return "string"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, numbers.Number):
        return "number"
    return type(value).__name__


def _check_labels(y, n_bags):
    """1-D class labels, one per bag: no missing value (NaN or None), no empty or blank
    string, and discrete (scikit-learn's ``check_classification_targets``: continuous
    floats are a regression target)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D class labels, got shape {y.shape}.")
    if len(y) != n_bags:
        raise ValueError(f"X holds {n_bags} bags but y has {len(y)} labels.")
    missing = np.asarray(pd.isna(y), dtype=bool)
    if missing.any():
        rows = np.flatnonzero(missing)[:10].tolist()
        raise ValueError(
            f"y has {int(missing.sum())} missing labels (NaN or None) at rows {rows}; drop "
            "those slides or label them before fitting."
        )
    if y.dtype.kind in "OUS":
        blank = np.array([isinstance(v, (str, bytes)) and not v.strip() for v in y], dtype=bool)
        if blank.any():
            rows = np.flatnonzero(blank)[:10].tolist()
            raise ValueError(
                f"y has {int(blank.sum())} empty or blank labels at rows {rows}; label those "
                "slides or drop them before fitting."
            )
    if y.dtype.kind == "O":
        kinds = {_label_kind(v) for v in y}
        if len(kinds) > 1:
            raise ValueError(
                f"y mixes labels of kinds {sorted(kinds)} (e.g. {y[:3].tolist()}); give labels "
                "of one kind (all strings, or all integers)."
            )
        if kinds == {"number"}:  # e.g. a pandas object column of ints
            y = np.asarray(y.tolist())
    try:
        check_classification_targets(y)
    except ValueError as exc:
        hint = ""
        if y.dtype.kind in "fc" and type_of_target(y) == "continuous":
            hint = " For expression or another continuous target, use HE2RNARegressor."
        reason = " ".join(str(exc).split())
        raise ValueError(
            f"y must hold class labels (e.g. {y[:3].tolist()}): {reason}{hint}"
        ) from None
    return y


class HE2RNAClassifier(
    ClassifierMixin, TransformerMixin, ClassNamePrefixFeaturesOutMixin, BaseHE2RNA
):
    """Classify slides (e.g. MSI status) from bags of tile features.

    The same network as :class:`HE2RNARegressor`: one MLP shared by all tiles gives each
    tile a logit per class, and per class the slide's logit is the mean of its k highest
    tile logits over real tiles (k drawn from ``ks`` in training, averaged over ``ks`` at
    inference). Trained with cross-entropy, optionally class-weighted, with early stopping
    on the validation loss. With ``init_from``, the network is rebuilt with a fitted
    regressor's exact architecture (hidden layers, activation, feature standardisation), its
    hidden layers start from the regressor's weights and can be frozen, and only the output
    layer starts anew: this package's fine-tuning of its transcriptomic representation. It
    is not the paper's transfer recipe, which trains a separate MLP on mean tile features
    and feeds its 256-d layer to a small classifier.

    Its defaults are the regressor's but for four, ``CLASSIFIER_OVERRIDES``:
    ``dropout=0.25``, ``ks=KS_SUPER_TILES``, ``k_training="random"`` and ``lr=3e-4``. The
    regressor departs from the paper there because it fine-tunes a closed-form start; the
    classifier has none and trains from a random start, so it keeps the paper's recipe.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Ignored with ``init_from``, whose architecture is used.
    activation : {"relu", "gelu", "tanh", "leaky_relu"}, default="relu"
        Ignored with ``init_from``, whose activation is used.
    dropout : float, default=0.25
    standardize : bool, default=True
        Standardise tile features (ignored with ``init_from``: its standardisation is kept).
    ks : tuple of int, default=(1, 2, 5, 10, 20, 50, 100)
    k_training : {"random", "average"}, default="random"
        One k drawn from ``ks`` per training batch (the paper), or the mean over all ``ks``
        as at inference.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss; "balanced" uses n_samples / (n_classes *
        count). MSI-high is about 15% of colorectal tumours.
    init_from : HE2RNARegressor or FrozenEstimator, optional
        A fitted regressor whose hidden layers (and feature standardisation) initialise
        this network. Only the output layer starts anew. ``clone`` (and so GridSearchCV)
        copies an estimator parameter unfitted: wrap it as
        ``FrozenEstimator(fitted_regressor)`` to keep it fitted there.
    freeze : {"none", "hidden"} or int, default="none"
        With ``init_from``: keep all hidden layers fixed ("hidden"), or the first n.
    max_epochs : int, default=200
    batch_size : int, default=16
    lr : float, default=3e-4
    weight_decay : float, default=0.0
    patience : int, default=20
    validation_fraction : float or None, default=0.1
        Fraction of patients (``groups``) or slides held out for early stopping.
    device : {"auto", "cpu", "cuda"}, default="auto"
    max_batch_tiles : int or None, default=65536
    num_workers : int, default=0
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    classes_ : ndarray
    class_weight_ : ndarray of shape (n_classes,) or None
        The class weights of the loss (None without ``class_weight``).
    module_ : HE2RNAModule
        The trained network.
    history_ : pandas.DataFrame
        One row per epoch (``epoch``, ``train_loss``, ``valid_loss``, ``dur``, ``kept``).
    n_features_in_ : int
    feature_spec_ : dict
        The features it was fitted on (encoder, weights, dimension, µm/px, tile size, from
        the bags' ``meta``: :func:`~he2rna_sklearn.bags.feature_spec`); ``predict`` and the
        other methods that take bags refuse bags of other features. Plain arrays carry no
        spec and are checked for their dimension only.
    best_epoch_ : int
    best_score_ : float or None
        Validation loss at ``best_epoch_``.
    validation_indices_ : ndarray of int or None
        Positions in ``X`` of the slides held out for early stopping.

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn import HE2RNAClassifier
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(20, 8)).astype("float32") for _ in range(30)]
    >>> y = np.array(["MSS", "MSI-H"] * 15)
    >>> for b, label in zip(bags, y):
    ...     b[:3, 0] += 3.0 * (label == "MSI-H")
    >>> clf = HE2RNAClassifier(hidden_layer_sizes=(16,), max_epochs=20, random_state=0)
    >>> clf.fit(bags, y).predict_proba(bags[:2]).shape
    (2, 2)
    """

    __metadata_request__fit = {"groups": True}

    _parameter_constraints = {
        **NETWORK_CONSTRAINTS,
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "freeze": [
            StrOptions({"none", "hidden"}),
            Interval(numbers.Integral, 0, None, closed="left"),
        ],
    }

    def __init__(
        self,
        hidden_layer_sizes=_D["hidden_layer_sizes"],
        activation=_D["activation"],
        dropout=_D["dropout"],
        standardize=_D["standardize"],
        ks=_D["ks"],
        k_training=_D["k_training"],
        class_weight=None,
        init_from=_D["init_from"],
        freeze="none",
        max_epochs=_D["max_epochs"],
        batch_size=_D["batch_size"],
        lr=_D["lr"],
        weight_decay=_D["weight_decay"],
        patience=_D["patience"],
        validation_fraction=_D["validation_fraction"],
        device=_D["device"],
        max_batch_tiles=_D["max_batch_tiles"],
        num_workers=_D["num_workers"],
        random_state=_D["random_state"],
        verbose=_D["verbose"],
    ):
        store_params(self, locals())

    def _check_architecture(self):
        """With ``init_from``, the source's hidden layers and activation (exactly)."""
        if self.init_from is None:
            return super()._check_architecture()
        config = self._source_module().config
        if "hidden_layer_sizes" not in config:
            raise ValueError(
                "HE2RNAClassifier(init_from=...) starts from the hidden layers of the paper's "
                "network; this regressor has the tile-type network. Fit the regressor with "
                "tile_types=None, or classify from its embedding: make_pipeline("
                "FrozenEstimator(regressor), StandardScaler(), LogisticRegression())."
            )
        return config["hidden_layer_sizes"], config["activation"], self._check_ks()

    def _n_frozen(self, n_hidden):
        if self.freeze == "none":
            return 0
        if self.freeze == "hidden":
            return n_hidden
        if self.freeze > n_hidden:
            raise ValueError(f"freeze={self.freeze} but the network has {n_hidden} hidden layers.")
        return int(self.freeze)

    def _start_module(self, module, bags, targets, seeds):
        """With ``init_from``: its hidden layers and feature standardisation (frozen as
        ``freeze`` says); the output layer starts anew."""
        if self.init_from is None:
            return False
        n_hidden = len(module.config["hidden_layer_sizes"])
        copy_hidden_layers(module, self._source_module(), self._n_frozen(n_hidden))
        return True

    def fit(self, X, y, groups=None):
        """Fit the classifier.

        Parameters
        ----------
        X : sequence of bags
        y : array-like of shape (n_slides,)
            Class labels (two or more classes; no empty string; not continuous). A
            Series indexed by the bags' ``slide_id`` must list them in the bags' order.
        groups : array-like of shape (n_slides,), optional
            Patient ids, for the early-stopping split. Routed under metadata routing.

        Returns
        -------
        self
        """
        with self._fitting():
            return self._fit(X, y, groups)

    def _fit(self, X, y, groups):
        self._validate_params()
        bags, n_features = check_bags(X)
        check_row_order(y, bags)
        y = _check_labels(y, len(bags))
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError(f"y has a single class {encoder.classes_.tolist()}; need two or more.")
        codes = encoder.transform(y).astype(np.int64)
        n_classes = len(encoder.classes_)
        if self.init_from is not None:
            source = self._source_module()
            if source.config["n_features"] != n_features:
                raise ValueError(
                    f"init_from was fitted on {source.config['n_features']} features but X "
                    f"has {n_features}."
                )
        seeds = self._seeds()
        train, valid = validation_split(len(bags), groups, self.validation_fraction, seeds["split"])
        if self.class_weight is not None:
            if len(np.unique(codes[train])) < n_classes:
                raise ValueError("class_weight needs every class in the training split.")
            weights = compute_class_weight(
                self.class_weight, classes=np.arange(n_classes), y=codes[train]
            )
            criterion = torch.nn.CrossEntropyLoss(
                weight=torch.as_tensor(weights, dtype=torch.float32)
            )
            bias = np.zeros(n_classes, dtype=np.float32)
        else:
            weights = None
            criterion = torch.nn.CrossEntropyLoss
            prior = np.bincount(codes[train], minlength=n_classes) / len(train)
            bias = np.log(np.maximum(prior, 1e-6)).astype(np.float32)
        options = TrainingOptions(criterion=criterion, n_outputs=n_classes, output_bias=bias)
        self._fit_net(bags, codes, (train, valid), seeds, options)
        self.classes_ = encoder.classes_
        self.class_weight_ = weights
        return self

    def decision_function(self, X):
        """Pooled class logits; for two classes, the logit of ``classes_[1]`` minus ``[0]``."""
        logits = self._run(X, lambda m, x, mask: m(x, mask))
        return logits[:, 1] - logits[:, 0] if len(self.classes_) == 2 else logits

    def predict_proba(self, X):
        """Class probabilities, (n_slides, n_classes), columns in ``classes_`` order."""
        logits = self._run(X, lambda m, x, mask: m(x, mask))
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def predict(self, X):
        """The most probable class of each slide."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def predict_tiles(self, bag):
        """Per-tile class logits of one bag, (n_tiles, n_classes): where the evidence is."""
        return self._tile_outputs(bag)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.classifier_tags.multi_class = True
        return tags
