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
from torch import nn

from .._torch import module_state, rebuild_module, resolve_device
from ..bags import check_bags, check_finite_bag
from ..metrics import mean_gene_correlation
from ._targets import check_targets
from ._training import validation_split

__all__ = ["MeanFeatureEmbedder", "mean_tile_features"]

_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def mean_tile_features(X, *, n_features=None, name="X"):
    """The mean feature vector of each bag, (n_slides, n_features) float32.

    Parameters
    ----------
    X : sequence of bags
    n_features : int, optional
        The feature count every bag must have.
    name : str
        The parameter name used in error messages.

    Returns
    -------
    means : ndarray of shape (n_slides, n_features)

    Examples
    --------
    >>> import numpy as np
    >>> mean_tile_features([np.ones((3, 2)), np.zeros((5, 2))])
    array([[1., 1.],
           [0., 0.]], dtype=float32)
    """
    bags, n_features = check_bags(X, n_features=n_features, name=name)
    out = np.empty((len(bags), n_features), np.float32)
    for i, bag in enumerate(bags):
        arr = np.asarray(bag, dtype=np.float64)
        if not np.isfinite(arr).all():  # in-memory bags were checked; lazy ones are now
            check_finite_bag(arr, i, bag, name)
        out[i] = arr.mean(axis=0)
    return out


class _MeanFeatureMLP(nn.Module):
    """Standardise a slide's mean features, hidden layers, then a linear layer to genes."""

    def __init__(self, n_features, hidden, n_outputs, activation, dropout, mean, scale):
        super().__init__()
        self.config = {
            "n_features": int(n_features),
            "hidden": [int(h) for h in hidden],
            "n_outputs": int(n_outputs),
            "activation": str(activation),
            "dropout": float(dropout),
        }
        self.register_buffer("input_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("input_scale", torch.as_tensor(scale, dtype=torch.float32))
        sizes = (n_features, *hidden)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = _ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(sizes[-1], n_outputs)
        nn.init.zeros_(self.output.bias)  # targets are centred on their training mean

    def embed(self, x):
        """The last hidden layer after its activation (no dropout: for eval mode)."""
        h = (x - self.input_mean) / self.input_scale
        for i, layer in enumerate(self.hidden):
            if i:
                h = self.dropout(h)
            h = self.activation(layer(h))
        return h

    def forward(self, x):
        return self.output(self.dropout(self.embed(x)))


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
        1 prints one line per epoch.

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted network (in eval mode).
    n_features_in_ : int
        Tile feature dimension.
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
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "standardize": ["boolean"],
        "output": [StrOptions({"embedding", "expression"})],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "patience": [Interval(numbers.Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither"), None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
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
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.standardize = standardize
        self.output = output
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

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
        means = mean_tile_features(X)
        Y, names, _ = check_targets(expression, len(means), name="expression")
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
            module = _MeanFeatureMLP(
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
        self.gene_names_ = names
        self._y_mean, self._y_scale = y_mean.astype(np.float32), y_scale
        return self

    def _train(self, module, means, Z, train, valid, device, shuffle_rng):
        x_all = torch.as_tensor(means, device=device)
        z_all = torch.as_tensor(Z, dtype=torch.float32, device=device)
        optimizer = torch.optim.Adam(
            module.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay)
        )
        loss_fn = nn.MSELoss()
        batch = int(self.batch_size)
        history, best, best_epoch, best_state, waited = [], np.inf, None, None, 0
        for epoch in range(1, int(self.max_epochs) + 1):
            module.train()
            order = train[shuffle_rng.permutation(len(train))]
            total = 0.0
            for start in range(0, len(order), batch):
                idx = torch.as_tensor(order[start : start + batch], device=device)
                optimizer.zero_grad()
                loss = loss_fn(module(x_all[idx]), z_all[idx])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            row = {"epoch": epoch, "train_loss": total / len(order)}
            if valid is not None:
                module.eval()
                with torch.inference_mode():
                    idx = torch.as_tensor(valid, device=device)
                    pred = module(x_all[idx])
                    row["valid_loss"] = loss_fn(pred, z_all[idx]).item()
                row["valid_r"] = mean_gene_correlation(Z[valid], pred.float().cpu().numpy())
                if row["valid_loss"] < best - 1e-4:
                    best, best_epoch, waited = row["valid_loss"], epoch, 0
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                else:
                    waited += 1
            history.append(row)
            if self.verbose:
                print(
                    "  ".join(
                        f"{k} {v:.4f}" if k != "epoch" else f"epoch {v:4d}" for k, v in row.items()
                    )
                )
            if valid is not None and waited >= self.patience:
                break
        if best_state is not None:
            module.load_state_dict(best_state)
            self.best_epoch_, self.best_score_ = best_epoch, float(best)
        else:
            self.best_epoch_, self.best_score_ = len(history), None
        self.history_ = history

    # -- saving (skops, see he2rna_sklearn.persistence): numpy arrays, no torch objects ----
    def __getstate__(self):
        state = dict(super().__getstate__())
        module = state.get("module_")
        if isinstance(module, _MeanFeatureMLP):
            state["module_"] = module_state(module)
        return state

    def __setstate__(self, state):
        state = dict(state)
        module = state.get("module_")
        if isinstance(module, dict):

            def build(config):  # the input mean and scale are buffers: loaded after
                n = int(config["n_features"])
                return _MeanFeatureMLP(
                    n,
                    tuple(config["hidden"]),
                    int(config["n_outputs"]),
                    config["activation"],
                    float(config["dropout"]),
                    np.zeros(n, np.float32),
                    np.ones(n, np.float32),
                )

            state["module_"] = rebuild_module(build, module)
        super().__setstate__(state)

    # -- inference ----------------------------------------------------------------------
    def _forward(self, X, fn):
        check_is_fitted(self, "module_")
        means = mean_tile_features(X, n_features=self.n_features_in_)
        device = next(self.module_.parameters()).device
        self.module_.eval()
        outs = []
        with torch.inference_mode():
            for start in range(0, len(means), 4096):
                x = torch.as_tensor(means[start : start + 4096], device=device)
                outs.append(fn(x).float().cpu().numpy())
        return np.concatenate(outs)

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
