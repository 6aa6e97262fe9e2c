"""HE2RNAClassifier: a multiple-instance classifier with HE2RNA's per-tile MLP and top-k."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted

from ..bags import check_bags
from ._base import NETWORK_CONSTRAINTS, BaseHE2RNA
from ._modules import HE2RNAModule
from ._regressor import KS_SUPER_TILES

__all__ = ["HE2RNAClassifier"]


class HE2RNAClassifier(ClassifierMixin, BaseHE2RNA):
    """Classify slides (e.g. MSI status) from bags of tile features.

    The same network as :class:`HE2RNARegressor`: one MLP shared by all tiles gives each
    tile a logit per class, and per class the slide's logit is the mean of its k highest
    tile logits over real tiles (k drawn from ``ks`` in training, averaged over ``ks`` at
    inference). Trained with cross-entropy, optionally class-weighted, with early stopping
    on the validation loss. With ``init_from``, the hidden layers start from a fitted
    regressor's (the paper's fine-tuning of the transcriptomic representation) and can be
    frozen.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Ignored with ``init_from``, whose architecture is used.
    activation : {"relu", "gelu", "tanh", "leaky_relu"}, default="relu"
        Ignored with ``init_from``.
    dropout : float, default=0.25
    standardize : bool, default=True
        Standardise tile features (ignored with ``init_from``: its standardisation is kept).
    ks : tuple of int, default=(1, 2, 5, 10, 20, 50, 100)
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
    net_ : skorch.NeuralNet
    n_features_in_ : int
    best_epoch_ : int
    best_score_ : float or None
        Validation loss at ``best_epoch_``.

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
        "init_from": [BaseEstimator, None],
        "freeze": [
            StrOptions({"none", "hidden"}),
            Interval(numbers.Integral, 0, None, closed="left"),
        ],
    }

    def __init__(
        self,
        hidden_layer_sizes=(256, 256),
        activation="relu",
        dropout=0.25,
        standardize=True,
        ks=KS_SUPER_TILES,
        class_weight=None,
        init_from=None,
        freeze="none",
        max_epochs=200,
        batch_size=16,
        lr=3e-4,
        weight_decay=0.0,
        patience=20,
        validation_fraction=0.1,
        device="auto",
        max_batch_tiles=65536,
        num_workers=0,
        random_state=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.standardize = standardize
        self.ks = ks
        self.class_weight = class_weight
        self.init_from = init_from
        self.freeze = freeze
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.max_batch_tiles = max_batch_tiles
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose

    def _check_architecture(self):
        if self.init_from is None:
            return super()._check_architecture()
        source = self._source_module()
        hidden = tuple(m.out_features for m in source.hidden if isinstance(m, torch.nn.Linear))
        return hidden, self._check_ks()

    def _source_module(self):
        source = getattr(self.init_from, "estimator", self.init_from)  # FrozenEstimator
        try:
            check_is_fitted(source, "net_")
        except Exception as exc:
            raise ValueError(
                "init_from must be a fitted HE2RNARegressor. Under clone() (GridSearchCV, "
                "cross_validate) an estimator parameter is cloned unfitted: pass "
                "init_from=FrozenEstimator(fitted_regressor) to keep it fitted."
            ) from exc
        module = source.net_.module_
        if not isinstance(module, HE2RNAModule):
            raise TypeError("init_from must be a fitted HE2RNARegressor or HE2RNAClassifier.")
        return module

    def _n_frozen(self, n_hidden):
        if self.freeze == "none":
            return 0
        if self.freeze == "hidden":
            return n_hidden
        if self.freeze > n_hidden:
            raise ValueError(f"freeze={self.freeze} but the network has {n_hidden} hidden layers.")
        return int(self.freeze)

    def fit(self, X, y, groups=None):
        """Fit the classifier.

        Parameters
        ----------
        X : sequence of bags
        y : array-like of shape (n_slides,)
            Class labels (two or more classes).
        groups : array-like of shape (n_slides,), optional
            Patient ids, for the early-stopping split. Routed under metadata routing.

        Returns
        -------
        self
        """
        self._validate_params()
        bags, n_features = check_bags(X)
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D class labels, got shape {y.shape}.")
        if len(y) != len(bags):
            raise ValueError(f"X holds {len(bags)} bags but y has {len(y)} labels.")
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError(f"y has a single class {encoder.classes_.tolist()}; need two or more.")
        codes = encoder.transform(y).astype(np.int64)
        n_classes = len(encoder.classes_)
        seeds = self._seeds()
        train, valid = self._validation_split(len(bags), groups, seeds["split"])
        weights = None
        if self.class_weight is not None:
            present = np.unique(codes[train])
            if len(present) < n_classes:
                raise ValueError("class_weight needs every class in the training split.")
            weights = torch.as_tensor(
                compute_class_weight(
                    self.class_weight, classes=np.arange(n_classes), y=codes[train]
                ),
                dtype=torch.float32,
            )
            bias = np.zeros(n_classes, dtype=np.float32)
        else:
            prior = np.bincount(codes[train], minlength=n_classes) / len(train)
            bias = np.log(np.maximum(prior, 1e-6)).astype(np.float32)

        init = None
        if self.init_from is not None:
            source = self._source_module()
            if source.input_mean.shape[0] != n_features:
                raise ValueError(
                    f"init_from was fitted on {source.input_mean.shape[0]} features but X has "
                    f"{n_features}."
                )

            def init(net):
                module = net.module_
                module.hidden.load_state_dict(source.hidden.state_dict())
                module.input_mean.copy_(source.input_mean)
                module.input_scale.copy_(source.input_scale)
                linears = [m for m in module.hidden if isinstance(m, torch.nn.Linear)]
                for layer in linears[: self._n_frozen(len(linears))]:
                    layer.requires_grad_(False)

        self._fit_net(
            bags,
            codes,
            train,
            valid,
            seeds,
            n_outputs=n_classes,
            criterion=torch.nn.CrossEntropyLoss,
            criterion_params=None if weights is None else {"weight": weights},
            output_bias=bias,
            monitor="valid_loss",
            lower_is_better=True,
            init=init,
        )
        self.classes_ = encoder.classes_
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

    def embed(self, X):
        """Slide embedding: the mean over tiles of the last hidden layer (as the regressor's)."""
        return self._embed(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.classifier_tags.multi_class = True
        return tags
