"""Shared machinery of the HE2RNA estimators: parameters, the skorch net, state, inference."""

from __future__ import annotations

import copy
import numbers

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit, StratifiedGroupKFold
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import EarlyStopping, EpochScoring
from skorch.helper import predefined_split

from .._torch import module_state, rebuild_module, resolve_device
from ..bags import check_bags
from ._modules import ACTIVATIONS, KS_SUPER_TILES, HE2RNAModule
from ._net import BagDataset, BagNet, collate_bags, iterate_batches

__all__ = ["BaseHE2RNA", "NETWORK_CONSTRAINTS", "feature_stats", "source_module"]

#: Parameter constraints shared by the HE2RNA estimators (scikit-learn's validation).
NETWORK_CONSTRAINTS = {
    "hidden_layer_sizes": ["array-like"],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
    "standardize": ["boolean"],
    "ks": ["array-like"],
    "k_training": [StrOptions({"average", "random"})],
    "init_from": [HasMethods(["fit"]), None],
    "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
    "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    "lr": [Interval(numbers.Real, 0, None, closed="neither")],
    "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
    "patience": [Interval(numbers.Integral, 1, None, closed="left")],
    "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither"), None],
    "device": [str, torch.device],
    "max_batch_tiles": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "num_workers": [Interval(numbers.Integral, 0, None, closed="left")],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}

_SEED_NAMES = ("torch", "split", "k", "shuffle", "stats")


def feature_stats(bags, random_state, max_tiles=200_000):
    """Per-feature mean and standard deviation over the tiles of ``bags``.

    Bags are visited in a seeded random order until ``max_tiles`` tiles are seen, so that
    cohorts read lazily from disk are not read in full. A constant feature gets scale 1.
    """
    order = check_random_state(random_state).permutation(len(bags))
    total = None
    count = 0
    for i in order:
        arr = np.asarray(bags[i], dtype=np.float64)
        if total is None:
            total = np.zeros(arr.shape[1])
            total_sq = np.zeros(arr.shape[1])
        total += arr.sum(axis=0)
        total_sq += (arr * arr).sum(axis=0)
        count += arr.shape[0]
        if count >= max_tiles:
            break
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    scale = np.where(std > 1e-6 * max(1.0, np.abs(mean).max()), std, 1.0)
    return mean.astype(np.float32), scale.astype(np.float32)


def source_module(init_from, name="init_from"):
    """The fitted :class:`HE2RNAModule` of an estimator (or a ``FrozenEstimator`` of one)."""
    source = getattr(init_from, "estimator", init_from)  # FrozenEstimator
    try:
        check_is_fitted(source, "module_")
    except Exception as exc:
        raise ValueError(
            f"{name} must be a fitted HE2RNARegressor or HE2RNAClassifier. Under clone() "
            "(GridSearchCV, cross_validate) an estimator parameter is cloned unfitted: pass "
            f"{name}=FrozenEstimator(fitted_model) to keep it fitted."
        ) from exc
    module = source.module_
    if not isinstance(module, HE2RNAModule):
        raise TypeError(f"{name} must be a fitted HE2RNARegressor or HE2RNAClassifier.")
    return module


class _WarmEarlyStopping(EarlyStopping):
    """EarlyStopping that can count a scored warm start as epoch 0.

    Set ``start_score`` after ``net.initialize()``: training then stops ``patience``
    epochs after the warm start if no epoch beats it, and its weights are restored.
    """

    start_score = None

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        if self.start_score is not None:
            self.dynamic_threshold_ = self._calc_new_threshold(self.start_score)
            self.best_model_weights_ = copy.deepcopy(net.module_.state_dict())


class BaseHE2RNA(BaseEstimator):
    """Parameters, fitting and inference shared by HE2RNARegressor and HE2RNAClassifier.

    As scikit-learn's ``_BaseRidge``: one ``__init__`` and one set of parameter constraints
    here; subclasses list the parameters in their own signature (with their defaults) and
    pass them on. Subclasses encode their targets and call :meth:`_fit_net` with their
    criterion and early-stopping score.

    A fitted estimator holds its network as ``module_`` (an :class:`HE2RNAModule`), the
    per-epoch ``history_`` (a DataFrame) and ``best_epoch_``. Its pickled state holds only
    NumPy arrays, Python builtins and these classes (the module is stored as its ``config``
    and a state dict of arrays), so it can be saved with a format that does not execute code
    on load, such as ``skops.io``.
    """

    _parameter_constraints = dict(NETWORK_CONSTRAINTS)

    def __init__(
        self,
        hidden_layer_sizes=(256, 256),
        activation="relu",
        dropout=0.25,
        standardize=True,
        ks=KS_SUPER_TILES,
        k_training="random",
        init_from=None,
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
        self.k_training = k_training
        self.init_from = init_from
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

    # -- validation ---------------------------------------------------------------------
    def _check_architecture(self):
        """(hidden_layer_sizes, activation, ks) of the network to build."""
        hidden = tuple(int(h) for h in np.atleast_1d(self.hidden_layer_sizes))
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive, got {self.hidden_layer_sizes}.")
        return hidden, self.activation, self._check_ks()

    def _check_ks(self):
        ks = tuple(sorted({int(k) for k in np.atleast_1d(self.ks)}))
        if not ks or ks[0] < 1:
            raise ValueError(f"ks must hold positive integers, got {self.ks}.")
        return ks

    def _validation_split(self, n, groups, seed, strata=None):
        """Train/validation indices, by patient when ``groups`` is given.

        With ``strata`` (e.g. the cancer type of each slide), every stratum is represented
        in the validation set in proportion.
        """
        if self.validation_fraction is None:
            return np.arange(n), None
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (n,):
                raise ValueError(
                    f"groups must have one entry per bag ({n}), got shape {groups.shape}."
                )
            n_units, unit = len(np.unique(groups)), "patients (groups)"
        else:
            n_units, unit = n, "slides"
        n_valid = max(2, int(np.ceil(self.validation_fraction * n_units)))
        if n_units - n_valid < 2:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} needs at least {n_valid + 2} "
                f"{unit} ({n_valid} held out for early stopping, 2 to train) but X has "
                f"{n_units}. Pass validation_fraction=None to train for max_epochs without "
                "early stopping."
            )
        if strata is not None:
            n_splits = max(2, int(round(n_units / n_valid)))
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            units = groups if groups is not None else np.arange(n)
            train, valid = next(splitter.split(np.zeros(n), strata, units))
        else:
            if groups is not None:
                splitter = GroupShuffleSplit(n_splits=1, test_size=n_valid, random_state=seed)
            else:
                splitter = ShuffleSplit(n_splits=1, test_size=n_valid, random_state=seed)
            train, valid = next(splitter.split(np.zeros(n), groups=groups))
        return np.sort(train), np.sort(valid)

    def _seeds(self):
        rng = check_random_state(self.random_state)
        return dict(zip(_SEED_NAMES, (int(s) for s in rng.randint(2**31 - 1, size=5))))

    def _source_module(self):
        return source_module(self.init_from)

    # -- fitting ------------------------------------------------------------------------
    def _callbacks(self, monitor, lower_is_better, scoring):
        """Early stopping on ``monitor`` (computed by ``scoring`` when given)."""
        callbacks = []
        if scoring is not None:
            epoch_score = EpochScoring(
                scoring, name=monitor, lower_is_better=lower_is_better, on_train=False
            )
            callbacks.append((monitor, epoch_score))
        stopper = _WarmEarlyStopping(
            monitor=monitor,
            lower_is_better=lower_is_better,
            patience=self.patience,
            threshold=1e-4,
            threshold_mode="abs",
            load_best=True,
        )
        callbacks.append(("early_stopping", stopper))
        return callbacks

    def _build_net(
        self,
        module_params,
        criterion,
        *,
        valid_ds,
        callbacks,
        seeds,
        max_epochs=None,
    ):
        """The skorch net (not yet initialised) for ``module_params``."""
        device = resolve_device(self.device)
        return BagNet(
            HE2RNAModule,
            criterion,
            optimizer=torch.optim.Adam,
            optimizer__weight_decay=float(self.weight_decay),
            lr=float(self.lr),
            max_epochs=int(self.max_epochs if max_epochs is None else max_epochs),
            batch_size=int(self.batch_size),
            iterator_train__shuffle=True,
            iterator_train__collate_fn=collate_bags,
            iterator_train__generator=torch.Generator().manual_seed(seeds["shuffle"]),
            iterator_train__num_workers=self.num_workers,
            iterator_valid__collate_fn=collate_bags,
            iterator_valid__num_workers=self.num_workers,
            train_split=None if valid_ds is None else predefined_split(valid_ds),
            callbacks=callbacks if valid_ds is not None else [],
            device=device.type if device.index is None else str(device),
            verbose=self.verbose,
            k_seed=seeds["k"] if self.k_training == "random" else None,
            max_batch_tiles=self.max_batch_tiles,
            **{f"module__{k}": v for k, v in module_params.items()},
        )

    def _fit_net(
        self,
        bags,
        targets,
        split,
        seeds,
        *,
        criterion,
        n_outputs,
        output_bias=None,
        monitor="valid_loss",
        lower_is_better=True,
        scoring=None,
        init=None,
        output_l2=None,
        max_epochs=None,
    ):
        """Build the network, train it on ``split[0]`` (early stopping on ``split[1]``).

        ``seeds`` are this fit's seeds (:meth:`_seeds`, drawn once per fit).
        ``criterion`` is a loss class or instance; ``scoring`` an EpochScoring callable
        named after ``monitor``; ``init(module)`` may change the initialised module before
        training (warm starts, frozen layers); ``output_l2()``, called after ``init``, may
        return a penalty on the output weights for training (see :class:`BagNet`). With
        ``init`` and a validation split, the initialised module is scored as epoch 0 and
        kept if no epoch beats it. ``max_epochs`` overrides the estimator's (a refit for a
        chosen number of epochs).
        """
        train, valid = split
        self.validation_indices_ = None if valid is None else np.asarray(valid)
        hidden, activation, ks = self._check_architecture()
        n_features = bags[0].shape[1]
        mean = scale = None
        if self.standardize and self.init_from is None:
            mean, scale = feature_stats([bags[i] for i in train], seeds["stats"])
        module_params = dict(
            n_features=n_features,
            n_outputs=n_outputs,
            hidden_layer_sizes=hidden,
            activation=activation,
            dropout=float(self.dropout),
            ks=ks,
            output_bias=output_bias,
            input_mean=mean,
            input_scale=scale,
        )
        valid_ds = None
        if valid is not None:
            valid_ds = BagDataset([bags[i] for i in valid], targets[valid])
        net = self._build_net(
            module_params,
            criterion,
            valid_ds=valid_ds,
            callbacks=self._callbacks(monitor, lower_is_better, scoring),
            seeds=seeds,
            max_epochs=max_epochs,
        )
        device = resolve_device(self.device)
        fork = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork):
            torch.manual_seed(seeds["torch"])
            net.initialize()
            if init is not None:
                init(net.module_)
            if output_l2 is not None:
                net.set_params(output_l2=float(output_l2()))
            start = None
            if init is not None and scoring is not None and valid_ds is not None:
                # A warm start can already be the best model: it is epoch 0 of early stopping.
                start = float(scoring(net, valid_ds, targets[valid]))
                stopper = dict(net.callbacks_)["early_stopping"]
                stopper.start_score = start
            net.partial_fit(BagDataset([bags[i] for i in train], targets[train]), None)
        self._finish_fit(net, monitor if valid is not None else None, start)
        self.n_features_in_ = n_features
        self._n_features_out = net.module_.embedding_size
        return net

    def _finish_fit(self, net, monitor, start=None):
        """Keep the trained module and the history; drop the skorch net.

        ``start`` is the validation score of a warm start scored before training; early
        stopping counted it as epoch 0 (and restored its weights if no epoch beat it).
        """
        keys = [k for k in ("epoch", "train_loss", "valid_loss", monitor, "dur") if k]
        rows = [{k: row.get(k, np.nan) for k in dict.fromkeys(keys)} for row in net.history]
        if start is not None:
            rows.insert(0, {**dict.fromkeys(keys, np.nan), "epoch": 0, monitor: start})
        history = pd.DataFrame(rows)
        stopper = dict(net.callbacks_).get("early_stopping")
        scored = stopper is not None and (stopper.best_epoch_ or start is not None)
        if monitor is not None and scored:
            # The epoch whose weights EarlyStopping restored (0: the warm start).
            self.best_epoch_ = int(stopper.best_epoch_)
            kept = history.loc[history["epoch"] == self.best_epoch_, monitor]
            self.best_score_ = float(kept.iloc[0])
        else:
            self.best_epoch_ = int(history["epoch"].max())
            self.best_score_ = None
        history["kept"] = history["epoch"] == self.best_epoch_
        self.history_ = history
        self.module_ = net.module_.eval()

    # -- state --------------------------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns __dict__
        module = state.get("module_")
        if isinstance(module, HE2RNAModule):
            state["module_"] = module_state(module)
        history = state.get("history_")
        if isinstance(history, pd.DataFrame):
            state["history_"] = {c: history[c].to_numpy() for c in history.columns}
        return state

    def __setstate__(self, state):
        state = dict(state)
        module = state.get("module_")
        if isinstance(module, dict):
            state["module_"] = rebuild_module(lambda config: HE2RNAModule(**config), module)
        if isinstance(state.get("history_"), dict):
            state["history_"] = pd.DataFrame(state["history_"])
        super().__setstate__(state)

    # -- inference ----------------------------------------------------------------------
    def _module(self):
        """The fitted module, in eval mode on the inference device."""
        check_is_fitted(self, "module_")
        return self.module_.to(resolve_device(self.device)).eval()

    def _run(self, X, fn):
        module = self._module()
        bags, _ = check_bags(X, n_features=self.n_features_in_)
        device = next(module.parameters()).device
        outs = []
        with torch.inference_mode():
            for xb, mask in iterate_batches(
                bags,
                batch_size=self.batch_size,
                device=device,
                num_workers=self.num_workers,
                max_tiles=self.max_batch_tiles,
            ):
                outs.append(fn(module, xb, mask).float().cpu().numpy())
        return np.concatenate(outs)

    def _tile_outputs(self, bag):
        """Raw per-tile module outputs of one bag, (n_tiles, n_outputs)."""
        module = self._module()
        [bag], _ = check_bags([bag], n_features=self.n_features_in_, name="bag")
        device = next(module.parameters()).device
        x = torch.as_tensor(np.asarray(bag, dtype=np.float32), device=device)
        with torch.inference_mode():
            return module.tile_scores(x.unsqueeze(0))[0].float().cpu().numpy()

    def transform(self, X):
        """Slide embedding, (n_slides, hidden_layer_sizes[-1]).

        The last hidden layer of the per-tile network (after its activation), averaged over
        the slide's real tiles: the representation from which the outputs are computed
        (with no hidden layers, the standardised mean tile feature vector).
        """
        return self._run(X, lambda m, x, mask: m.embed(x, mask))
