"""Shared machinery of the HE2RNA estimators: parameters, the skorch net, state, inference."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import EpochScoring
from skorch.helper import predefined_split

from .._torch import module_state, rebuild_module, resolve_device
from ..bags import check_finite_outputs, check_fitted_bags, fitted_feature_spec
from ._init_from import source_module
from ._modules import HE2RNAModule
from ._net import BagDataset, BagNet, TrainingInterrupted, collate_bags, iterate_batches
from ._params import AUTO_LR, NETWORK_CONSTRAINTS
from ._pretrained import PretrainedMixin  # save_pretrained, from_pretrained
from ._tile_types import TileTypeModule
from ._training import WarmEarlyStopping, draw_seeds, feature_stats

__all__ = ["NETWORK_CLASSES", "BaseHE2RNA"]

#: The network classes an estimator may hold, by name (how saved models name them).
NETWORK_CLASSES = {"HE2RNAModule": HE2RNAModule, "TileTypeModule": TileTypeModule}


class BaseHE2RNA(PretrainedMixin, BaseEstimator):
    """Parameters, fitting and inference shared by HE2RNARegressor and HE2RNAClassifier.

    As scikit-learn's ``_BaseRidge``: the shared parameter constraints and the training
    loop live here, and each subclass lists its parameters in its own ``__init__``
    signature, the shared defaults read from
    :data:`~he2rna_sklearn.model._params.SHARED_DEFAULTS`, and stores them with
    :func:`~he2rna_sklearn.model._params.store_params`. A subclass encodes its targets and
    calls :meth:`_fit_net` with its
    :class:`~he2rna_sklearn.model._training.TrainingOptions`; it starts the network
    elsewhere than PyTorch's random initialisation by overriding :meth:`_start_module`
    (and :meth:`_output_l2`, a penalty that goes with that start).

    A fitted estimator holds its network as ``module_`` (an :class:`HE2RNAModule`), the
    per-epoch ``history_`` (a DataFrame) and ``best_epoch_``. Its pickled state holds only
    NumPy arrays, Python builtins and these classes (the module is stored as its ``config``
    and a state dict of arrays), so it can be saved with a format that does not execute code
    on load, such as ``skops.io``.
    """

    _parameter_constraints = dict(NETWORK_CONSTRAINTS)

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

    @contextlib.contextmanager
    def _fitting(self):
        """Around ``fit``: a model is fitted by this call or not at all, never a mix of two.

        Every fitted attribute of an earlier fit is dropped first, and this fit's are
        dropped again if it does not finish (an error, or Ctrl-C during the selection run,
        the validation predictions or the refit), so that ``predict`` raises
        ``NotFittedError`` rather than pairing a new network with an old target scale.
        """
        self._forget_fit()
        try:
            yield
        except BaseException:
            self._forget_fit()
            raise

    def _forget_fit(self):
        fitted = [k for k in vars(self) if k.endswith("_") and not k.endswith("__")]
        for name in fitted + ["_solution", "_y_was_1d", "_n_features_out"]:
            self.__dict__.pop(name, None)

    def _seeds(self):
        """This fit's seeds (see :func:`~he2rna_sklearn.model._training.draw_seeds`)."""
        return draw_seeds(self.random_state)

    def _source_module(self):
        return source_module(self.init_from)

    # -- hooks of the subclasses --------------------------------------------------------
    def _start_module(self, module, bags, targets, seeds):
        """Where training starts: change the initialised ``module`` before the first step.

        ``bags`` and ``targets`` are the training run's. Returns whether the module was
        changed (a warm start, scored as epoch 0 of early stopping). The default keeps
        PyTorch's random initialisation.
        """
        return False

    def _learning_rate(self):
        """``lr``, with ``"auto"`` resolved for the network built (:data:`AUTO_LR`)."""
        if self.lr == "auto":
            return AUTO_LR[self._module_class().__name__]
        return float(self.lr)

    def _module_class(self):
        """The network class to build (:class:`HE2RNAModule` unless overridden)."""
        return HE2RNAModule

    def _output_l2(self, n_slides, n_outputs):
        """The penalty on the output weights in training (``BagNet.output_l2``), read after
        :meth:`_start_module`, or None for none."""
        return None

    # -- fitting ------------------------------------------------------------------------
    def _callbacks(self, options):
        """Early stopping on ``options.monitor`` (computed by ``options.scoring`` if any)."""
        callbacks = []
        if options.scoring is not None:
            epoch_score = EpochScoring(
                options.scoring,
                name=options.monitor,
                lower_is_better=options.lower_is_better,
                on_train=False,
            )
            callbacks.append((options.monitor, epoch_score))
        stopper = WarmEarlyStopping(
            monitor=options.monitor,
            lower_is_better=options.lower_is_better,
            patience=self.patience,
            threshold=1e-4,
            threshold_mode="abs",
            load_best=True,
        )
        callbacks.append(("early_stopping", stopper))
        return callbacks

    def _build_net(self, module_params, options, valid_ds, seeds):
        """The skorch net (not yet initialised) for ``module_params``."""
        device = resolve_device(self.device)
        max_epochs = self.max_epochs if options.max_epochs is None else options.max_epochs
        return BagNet(
            self._module_class(),
            options.criterion,
            optimizer=torch.optim.Adam,
            optimizer__weight_decay=float(self.weight_decay),
            lr=self._learning_rate(),
            max_epochs=int(max_epochs),
            batch_size=int(self.batch_size),
            iterator_train__shuffle=True,
            iterator_train__collate_fn=collate_bags,
            iterator_train__generator=torch.Generator().manual_seed(seeds["shuffle"]),
            iterator_train__num_workers=self.num_workers,
            iterator_valid__collate_fn=collate_bags,
            iterator_valid__num_workers=self.num_workers,
            train_split=None if valid_ds is None else predefined_split(valid_ds),
            callbacks=self._callbacks(options) if valid_ds is not None else [],
            device=device.type if device.index is None else str(device),
            verbose=self.verbose,
            k_seed=seeds["k"] if self.k_training == "random" else None,
            max_batch_tiles=self.max_batch_tiles,
            **{f"module__{k}": v for k, v in module_params.items()},
        )

    def _module_params(self, bags, targets, train, options, seeds):
        """The :class:`HE2RNAModule` arguments for training on ``bags[train]``."""
        hidden, activation, ks = self._check_architecture()
        mean = scale = None
        if self.standardize and self.init_from is None:
            mean, scale = feature_stats([bags[i] for i in train], seeds["stats"])
        return dict(
            n_features=bags[0].shape[1],
            n_outputs=options.n_outputs,
            hidden_layer_sizes=hidden,
            activation=activation,
            dropout=float(self.dropout),
            ks=ks,
            output_bias=options.output_bias,
            input_mean=mean,
            input_scale=scale,
        )

    def _fit_net(self, bags, targets, split, seeds, options):
        """Build the network, train it on ``split[0]`` (early stopping on ``split[1]``).

        ``seeds`` are this fit's seeds (:meth:`_seeds`, drawn once per fit), ``options`` a
        :class:`~he2rna_sklearn.model._training.TrainingOptions`. The initialised network
        goes through :meth:`_start_module`; a changed one is, with ``options.scoring`` and
        a validation split, scored as epoch 0 and kept if no epoch beats it.
        """
        train, valid = split
        self.feature_spec_ = fitted_feature_spec(bags)  # checked at predict (_run)
        self.validation_indices_ = None if valid is None else np.asarray(valid)
        module_params = self._module_params(bags, targets, train, options, seeds)
        valid_ds = None
        if valid is not None:
            valid_ds = BagDataset([bags[i] for i in valid], targets[valid])
        net = self._build_net(module_params, options, valid_ds, seeds)
        train_bags = [bags[i] for i in train]
        device = resolve_device(self.device)
        fork = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork):
            torch.manual_seed(seeds["torch"])
            net.initialize()
            started = self._start_module(net.module_, train_bags, targets[train], seeds)
            output_l2 = self._output_l2(len(train), options.n_outputs)
            if output_l2 is not None:
                net.set_params(output_l2=float(output_l2))
            start = None
            if started and options.scoring is not None and valid_ds is not None:
                # A warm start can already be the best model: it is epoch 0 of early stopping.
                start = float(options.scoring(net, valid_ds, targets[valid]))
                net.set_params(callbacks__early_stopping__start_score=start)
            try:
                net.partial_fit(BagDataset(train_bags, targets[train]), None)
            except TrainingInterrupted:
                # never leave a half-trained network to be served as a fitted model
                self.__dict__.pop("module_", None)
                raise KeyboardInterrupt(
                    "training was interrupted: the model is not fitted"
                ) from None
        self._finish_fit(net, options.monitor if valid is not None else None, start)
        self.n_features_in_ = module_params["n_features"]
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
        history = pd.DataFrame(rows, columns=list(dict.fromkeys(keys)))  # 0 epochs: empty
        stopper = dict(net.callbacks_).get("early_stopping")
        scored = stopper is not None and (stopper.best_epoch_ or start is not None)
        if monitor is not None and scored:
            # The epoch whose weights EarlyStopping restored (0: the warm start).
            self.best_epoch_ = int(stopper.best_epoch_)
            kept = history.loc[history["epoch"] == self.best_epoch_, monitor]
            self.best_score_ = float(kept.iloc[0])
        else:
            self.best_epoch_ = int(history["epoch"].max()) if len(history) else 0
            self.best_score_ = None
        history["kept"] = history["epoch"] == self.best_epoch_
        self.history_ = history
        self.module_ = net.module_.eval()

    # -- state --------------------------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns __dict__
        module = state.get("module_")
        if isinstance(module, tuple(NETWORK_CLASSES.values())):
            state["module_"] = {**module_state(module), "class": type(module).__name__}
        history = state.get("history_")
        if isinstance(history, pd.DataFrame):
            state["history_"] = {c: history[c].to_numpy() for c in history.columns}
        return state

    def __setstate__(self, state):
        state = dict(state)
        module = state.get("module_")
        if isinstance(module, dict):
            name = module.get("class", "HE2RNAModule")  # files saved before 0.3 hold no class
            if name not in NETWORK_CLASSES:
                raise ValueError(f"Unknown network class {name!r} in a saved HE2RNA model.")
            module_class = NETWORK_CLASSES[name]
            state["module_"] = rebuild_module(lambda config: module_class(**config), module)
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
        bags = check_fitted_bags(self, X)  # feature_spec_, n_features_in_
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
        return check_finite_outputs(np.concatenate(outs), bags, type(self).__name__)

    def _tile_outputs(self, bag):
        """Raw per-tile module outputs of one bag, (n_tiles, n_outputs)."""
        module = self._module()
        [bag] = check_fitted_bags(self, [bag], name="bag")
        device = next(module.parameters()).device
        x = torch.as_tensor(np.asarray(bag, dtype=np.float32), device=device)
        with torch.inference_mode():
            scores = module.tile_scores(x.unsqueeze(0))[0].float().cpu().numpy()
        return check_finite_outputs(scores[None], [bag], type(self).__name__)[0]

    def transform(self, X):
        """Slide embedding, (n_slides, hidden_layer_sizes[-1]).

        The last hidden layer of the per-tile network (after its activation), averaged over
        the slide's real tiles: the representation from which the outputs are computed
        (with no hidden layers, the standardised mean tile feature vector).
        """
        return self._run(X, lambda m, x, mask: m.embed(x, mask))
