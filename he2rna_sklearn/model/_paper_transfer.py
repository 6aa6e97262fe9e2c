"""MeanFeatureEmbedder: the HE2RNA paper's transfer recipe, an MLP on mean tile features.

Written from the paper's description (Schmauch et al. 2020) and the facts gathered in
this project's issue 12; no code of the official HE2RNA repository is used.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping, EpochScoring
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from torch import nn

from .._torch import module_state, rebuild_module, resolve_device
from ..bags import check_bags, check_finite_outputs, check_fitted_bags, fitted_feature_spec
from ._mean_features import ACTIVATIONS, MeanFeatureMLP, SeededPermutation, mean_tile_features
from ._params import NETWORK_CONSTRAINTS, store_params
from ._targets import check_targets, valid_mean_r
from ._training import validation_split

__all__ = ["MeanFeatureEmbedder", "mean_tile_features"]

#: Parameters named and constrained as the HE2RNA estimators' (with defaults of their own).
_SHARED = (
    "dropout", "standardize", "max_epochs", "batch_size", "lr", "weight_decay", "patience",
    "validation_fraction", "device", "random_state", "verbose",
)  # fmt: skip


class MeanFeatureEmbedder(TransformerMixin, BaseEstimator):
    """The HE2RNA paper's transfer recipe: an MLP on mean tile features, used as embedding.

    Per slide, the tile features are averaged into one vector. A multilayer perceptron
    (by default 1,024 then 256 sigmoid units, as in the paper's transfer experiment: with
    ResNet50 features 2,048 -> 1,024 -> 256 -> genes) learns to predict the slide's
    z-scored expression from that vector. ``transform`` returns its last hidden layer (the
    256-d representation the paper fed to a small MSI classifier), or the predicted
    expression.

    This differs from the package's other recipes. :class:`HE2RNAEmbedder` and
    :meth:`HE2RNARegressor.transform` give the mean over tiles of the *per-tile* network's
    last hidden layer, the network being trained through top-k pooling; here the
    averaging happens first, on the input features, and the network sees one vector per
    slide. :class:`HE2RNAClassifier` fine-tunes the per-tile network on the labels.

    Like :class:`HE2RNAEmbedder`, the network is fitted on expression passed as metadata
    (``fit(X, y=None, *, expression)``), sliced per fold like any sample-aligned
    parameter; the labels ``y`` are never used, and a missing ``expression`` is an error.
    Used as the first step of a pipeline in cross-validation, it is refitted on each
    training fold's slides and expression only. Slide scores of the downstream classifier
    can be averaged per patient with :func:`~he2rna_sklearn.evaluation.aggregate_by_patient`,
    as in the paper.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(1024, 256)
        Hidden widths; the last one is the embedding size. At least one layer.
    activation : {"sigmoid", "relu", "tanh", "gelu"}, default="sigmoid"
        The paper's transfer MLP uses sigmoid activations.
    dropout : float, default=0.0
        Dropout between hidden layers and before the output layer, in training.
    standardize : bool, default=True
        Standardise the mean features with their training mean and standard deviation.
        Not in the paper, which fed the raw mean features; an affine change of the input
        that makes training robust to the scale of the backbone's features.
    output : {"embedding", "expression"}, default="embedding"
        What ``transform`` returns: the last hidden layer, or the predicted expression in
        the units of ``expression``.
    max_epochs : int, default=200
    batch_size : int, default=16
        Slides per optimisation step.
    lr : float, default=1e-3
        Adam learning rate. The optimiser settings (Adam, this rate, early stopping on the
        validation loss) are this package's choice: the description of the paper's recipe
        gives the architecture and the targets.
    weight_decay : float, default=0.0
    patience : int, default=20
        Epochs without improvement of the validation loss (MSE on z-scored targets)
        before stopping; the best epoch's weights are restored. The loss, not the
        per-gene r: r ignores scale, so a network that has barely left its constant
        output can reach its best r on a small validation set in the first epochs.
    validation_fraction : float or None, default=0.1
        Fraction of patients (``groups``) or, without groups, of slides held out for early
        stopping. None trains for ``max_epochs`` with no validation.
    device : {"auto", "cpu", "cuda"} or torch.device, default="auto"
        ``"auto"`` trains on CUDA when present.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, dropout, shuffling and the validation split.
    verbose : int, default=0
        1 prints skorch's epoch table.

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted network (in eval mode).
    n_features_in_ : int
        Tile feature dimension.
    feature_spec_ : dict
        The features it was fitted on (encoder, weights, dimension, µm/px, tile size, from
        the bags' ``meta``: :func:`~he2rna_sklearn.bags.feature_spec`); ``transform``
        refuses bags of other features. Plain arrays carry no spec.
    gene_names_ : ndarray of str
        Names of the expression columns.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss`` (MSE on z-scored targets) and, with
        validation, ``valid_loss`` and ``valid_r`` (mean per-gene Pearson r).
    best_epoch_ : int
        Epoch whose weights were kept (the last one without validation).
    best_score_ : float or None
        Validation loss at ``best_epoch_`` (None without validation).

    See Also
    --------
    HE2RNAEmbedder : the per-tile network's embedding, fitted per fold.
    HE2RNAClassifier : fine-tuning the per-tile network on the labels.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from he2rna_sklearn.model import MeanFeatureEmbedder
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(rng.integers(5, 30), 16)).astype("float32")
    ...         for _ in range(40)]
    >>> expression = pd.DataFrame({"CD3E": [b[:, 0].mean() for b in bags],
    ...                            "EPCAM": [b[:, 1].mean() for b in bags]})
    >>> emb = MeanFeatureEmbedder(hidden_layer_sizes=(32, 8), max_epochs=20,
    ...                           random_state=0).fit(bags, expression=expression)
    >>> emb.transform(bags).shape
    (40, 8)

    In a pipeline under cross-validation, with metadata routing::

        import sklearn
        sklearn.set_config(enable_metadata_routing=True)
        pipe = make_pipeline(MeanFeatureEmbedder(random_state=0), StandardScaler(),
                             LogisticRegression())
        cross_validate(pipe, bags, msi, cv=StratifiedGroupKFold(5),
                       params={"expression": expression, "groups": patients})

    Without routing, pass it as a step parameter:
    ``pipe.fit(bags, msi, meanfeatureembedder__expression=expression)``.
    """

    __metadata_request__fit = {"expression": True, "groups": True}

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "output": [StrOptions({"embedding", "expression"})],
        **{name: NETWORK_CONSTRAINTS[name] for name in _SHARED},
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],  # no "auto" here
    }

    def __init__(
        self,
        hidden_layer_sizes=(1024, 256),
        activation="sigmoid",
        dropout=0.0,
        standardize=True,
        output="embedding",
        max_epochs=200,
        batch_size=16,
        lr=1e-3,
        weight_decay=0.0,
        patience=20,
        validation_fraction=0.1,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        store_params(self, locals())

    # -- fitting ------------------------------------------------------------------------
    def _hidden(self):
        hidden = tuple(int(h) for h in np.atleast_1d(self.hidden_layer_sizes))
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(
                "hidden_layer_sizes must hold at least one positive width (the last one is "
                f"the embedding), got {self.hidden_layer_sizes!r}."
            )
        return hidden

    def fit(self, X, y=None, *, expression=None, groups=None):
        """Fit the MLP on the slides' ``expression``; ``y`` is ignored.

        Parameters
        ----------
        X : sequence of bags
            One (n_tiles, n_features) array or :class:`~he2rna_sklearn.Bag` per slide.
        y : ignored
            The labels of the downstream classifier; never used here.
        expression : array-like or DataFrame of shape (n_slides, n_genes)
            The slides' expression (e.g. log10(1 + FPKM-UQ)), aligned with ``X``. Each gene
            is z-scored with its training mean and standard deviation.
        groups : array-like of shape (n_slides,), optional
            Patient ids: the early-stopping split keeps each patient's slides on one side.

        Returns
        -------
        self
        """
        self._validate_params()
        hidden = self._hidden()
        if expression is None:
            raise ValueError(
                "MeanFeatureEmbedder.fit needs expression=(n_slides, n_genes): it learns from "
                "expression, never from y (the classification labels). In a pipeline pass "
                "meanfeatureembedder__expression=..., or enable metadata routing and pass "
                "expression=... to fit / cross_validate(params=...)."
            )
        bags, _ = check_bags(X, check_finite=False)
        spec = fitted_feature_spec(bags)
        means = mean_tile_features(bags)
        Y, names, _ = check_targets(expression, len(means), name="expression", bags=bags)
        rng = check_random_state(self.random_state)
        seed_torch, seed_split, seed_shuffle = (int(s) for s in rng.randint(2**31 - 1, size=3))
        train, valid = validation_split(len(means), groups, self.validation_fraction, seed_split)

        y_mean = Y[train].mean(axis=0)
        y_std = Y[train].std(axis=0)
        y_scale = np.where(y_std > 1e-12, y_std, 1.0).astype(np.float32)
        Z = (Y - y_mean) / y_scale
        x_mean = np.zeros(means.shape[1], np.float32)
        x_scale = np.ones(means.shape[1], np.float32)
        if self.standardize:
            x_mean = means[train].mean(axis=0)
            x_std = means[train].std(axis=0)
            x_scale = np.where(x_std > 1e-6 * max(1.0, np.abs(x_mean).max()), x_std, 1.0)

        device = resolve_device(self.device)
        fork = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork):
            torch.manual_seed(seed_torch)
            module = MeanFeatureMLP(
                means.shape[1],
                hidden,
                Y.shape[1],
                self.activation,
                float(self.dropout),
                x_mean,
                x_scale,
            ).to(device)
            self._train(module, means, Z, train, valid, device, np.random.RandomState(seed_shuffle))
        module.eval()
        self.module_ = module
        self.n_features_in_ = int(means.shape[1])
        self.feature_spec_ = spec
        self.gene_names_ = names
        self._y_mean, self._y_scale = y_mean.astype(np.float32), y_scale
        return self

    def _train(self, module, means, Z, train, valid, device, shuffle_rng):
        """Train ``module`` on the mean features of the ``train`` slides with skorch (MSE,
        Adam), early stopping on the ``valid`` slides' loss, the best weights restored."""
        callbacks, valid_ds = [], None
        if valid is not None:
            valid_ds = Dataset(means[valid], Z[valid])
            valid_r = EpochScoring(valid_mean_r, name="valid_r", lower_is_better=False)
            stopper = EarlyStopping(patience=self.patience, threshold_mode="abs", load_best=True)
            callbacks = [("valid_r", valid_r), ("early_stopping", stopper)]
        net = NeuralNet(
            module,
            nn.MSELoss,
            optimizer=torch.optim.Adam,
            optimizer__weight_decay=float(self.weight_decay),
            lr=float(self.lr),
            max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size),
            iterator_train__sampler=SeededPermutation(len(train), shuffle_rng),
            # generators of their own: the loaders' seed draws leave dropout's stream alone
            iterator_train__generator=torch.Generator(),
            iterator_valid__generator=torch.Generator(),
            iterator_valid__batch_size=len(means),  # the validation loss in one batch
            train_split=None if valid_ds is None else predefined_split(valid_ds),
            callbacks=callbacks,
            device=device.type if device.index is None else str(device),
            verbose=self.verbose,
        )
        net.initialize().partial_fit(Dataset(means[train], Z[train]), None)
        keys = ("epoch", "train_loss") + (("valid_loss", "valid_r") if valid is not None else ())
        self.history_ = [{k: row[k] for k in keys} for row in net.history]
        if valid is not None:
            self.best_epoch_ = int(stopper.best_epoch_)
            self.best_score_ = float(net.history[self.best_epoch_ - 1, "valid_loss"])
        else:
            self.best_epoch_, self.best_score_ = len(self.history_), None

    # -- saving (skops, see he2rna_sklearn.persistence): numpy arrays, no torch objects ----
    def __getstate__(self):
        state = dict(super().__getstate__())
        module = state.get("module_")
        if isinstance(module, MeanFeatureMLP):
            state["module_"] = module_state(module)
        return state

    def __setstate__(self, state):
        state = dict(state)
        module = state.get("module_")
        if isinstance(module, dict):
            state["module_"] = rebuild_module(MeanFeatureMLP.from_config, module)
        super().__setstate__(state)

    # -- inference ----------------------------------------------------------------------
    def _forward(self, X, fn):
        check_is_fitted(self, "module_")
        bags = check_fitted_bags(self, X, check_finite=False)  # mean_tile_features checks
        means = mean_tile_features(bags, n_features=self.n_features_in_)
        device = next(self.module_.parameters()).device
        self.module_.eval()
        outs = []
        with torch.inference_mode():
            for start in range(0, len(means), 4096):
                x = torch.as_tensor(means[start : start + 4096], device=device)
                outs.append(fn(x).float().cpu().numpy())
        return check_finite_outputs(np.concatenate(outs), bags, type(self).__name__)

    def transform(self, X):
        """The slide embedding (last hidden layer) or the predicted expression.

        Parameters
        ----------
        X : sequence of bags

        Returns
        -------
        Xt : ndarray of shape (n_slides, hidden_layer_sizes[-1]), or (n_slides, n_genes)
            with ``output="expression"``.
        """
        if self.output == "expression":
            z = self._forward(X, lambda x: self.module_(x))
            return z * self._y_scale + self._y_mean
        return self._forward(X, lambda x: self.module_.embed(x))

    def get_feature_names_out(self, input_features=None):
        """``meanfeatureembedder0``... for the embedding; the gene names for expression."""
        check_is_fitted(self, "module_")
        if self.output == "expression":
            return np.asarray(self.gene_names_, dtype=object)
        size = self.module_.hidden[-1].out_features
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(size)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = False
        return tags
