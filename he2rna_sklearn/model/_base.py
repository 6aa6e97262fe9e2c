"""Shared machinery of the HE2RNA estimators: validation, the skorch net, inference."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import EarlyStopping, EpochScoring
from skorch.helper import predefined_split

from .._torch import resolve_device
from ..bags import check_bags
from ._modules import ACTIVATIONS, HE2RNAModule
from ._net import BagDataset, BagNet, collate_bags, iterate_batches

__all__ = ["BaseHE2RNA", "NETWORK_CONSTRAINTS", "feature_stats"]

#: Parameter constraints shared by the HE2RNA estimators (scikit-learn's validation).
NETWORK_CONSTRAINTS = {
    "hidden_layer_sizes": ["array-like"],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
    "standardize": ["boolean"],
    "ks": ["array-like"],
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


class BaseHE2RNA(BaseEstimator):
    """Fitting and inference shared by HE2RNARegressor and HE2RNAClassifier.

    Subclasses define ``__init__`` (with the common parameters), encode their targets, and
    call :meth:`_fit_net` with their criterion and early-stopping monitor.
    """

    # -- validation ---------------------------------------------------------------------
    def _check_architecture(self):
        hidden = tuple(int(h) for h in np.atleast_1d(self.hidden_layer_sizes))
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive, got {self.hidden_layer_sizes}.")
        return hidden, self._check_ks()

    def _check_ks(self):
        ks = tuple(sorted({int(k) for k in np.atleast_1d(self.ks)}))
        if not ks or ks[0] < 1:
            raise ValueError(f"ks must hold positive integers, got {self.ks}.")
        return ks

    def _validation_split(self, n, groups, seed):
        """Train/validation indices, by patient when ``groups`` is given."""
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
        if groups is not None:
            splitter = GroupShuffleSplit(n_splits=1, test_size=n_valid, random_state=seed)
        else:
            splitter = ShuffleSplit(n_splits=1, test_size=n_valid, random_state=seed)
        train, valid = next(splitter.split(np.zeros(n), groups=groups))
        return np.sort(train), np.sort(valid)

    def _seeds(self):
        rng = check_random_state(self.random_state)
        names = ("torch", "split", "k", "shuffle", "stats")
        return dict(zip(names, (int(s) for s in rng.randint(2**31 - 1, size=len(names)))))

    def _fit_net(
        self,
        bags,
        targets,
        train,
        valid,
        seeds,
        *,
        n_outputs,
        criterion,
        output_bias=None,
        criterion_params=None,
        monitor="valid_loss",
        lower_is_better=True,
        scoring=None,
        init=None,
    ):
        """Build the skorch net, train it on ``train`` (early stopping on ``valid``).

        ``scoring`` is an EpochScoring callable named after ``monitor``; ``init(net)`` may
        change the initialised module before training (e.g. load and freeze layers).
        """
        hidden, ks = self._check_architecture()
        n_features = bags[0].shape[1]
        mean = scale = None
        if self.standardize:
            mean, scale = feature_stats([bags[i] for i in train], seeds["stats"])
        device = resolve_device(self.device)
        train_ds = BagDataset([bags[i] for i in train], targets[train])
        callbacks, train_split = [], None
        if valid is not None:
            train_split = predefined_split(BagDataset([bags[i] for i in valid], targets[valid]))
            if scoring is not None:
                callbacks.append(
                    (
                        monitor,
                        EpochScoring(
                            scoring, name=monitor, lower_is_better=lower_is_better, on_train=False
                        ),
                    )
                )
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor=monitor,
                        lower_is_better=lower_is_better,
                        patience=self.patience,
                        threshold=1e-4,
                        threshold_mode="abs",
                        load_best=True,
                    ),
                )
            )
        net = BagNet(
            HE2RNAModule,
            module__n_features=n_features,
            module__n_outputs=n_outputs,
            module__hidden_layer_sizes=hidden,
            module__activation=self.activation,
            module__dropout=float(self.dropout),
            module__ks=ks,
            module__output_bias=output_bias,
            module__input_mean=mean,
            module__input_scale=scale,
            criterion=criterion,
            optimizer=torch.optim.Adam,
            optimizer__weight_decay=float(self.weight_decay),
            lr=float(self.lr),
            max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size),
            iterator_train__shuffle=True,
            iterator_train__collate_fn=collate_bags,
            iterator_train__generator=torch.Generator().manual_seed(seeds["shuffle"]),
            iterator_train__num_workers=self.num_workers,
            iterator_valid__collate_fn=collate_bags,
            iterator_valid__num_workers=self.num_workers,
            train_split=train_split,
            callbacks=callbacks,
            device=device.type if device.index is None else str(device),
            verbose=self.verbose,
            **{f"criterion__{k}": v for k, v in (criterion_params or {}).items()},
        )
        net.k_generator = torch.Generator().manual_seed(seeds["k"])
        net.max_batch_tiles = self.max_batch_tiles
        fork = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork):
            torch.manual_seed(seeds["torch"])
            net.initialize()
            if init is not None:
                init(net)
            net.partial_fit(train_ds, None)
        self._finish_fit(net, valid is not None, monitor)
        self.n_features_in_ = n_features
        self._n_features_out = net.module_.embedding_size
        return net

    def _finish_fit(self, net, validated, monitor):
        history = net.history
        stopper = dict(net.callbacks_).get("early_stopping")
        if validated and stopper is not None and stopper.best_epoch_:
            # The epoch whose weights EarlyStopping restored.
            self.best_epoch_ = int(stopper.best_epoch_)
            self.best_score_ = float(history[self.best_epoch_ - 1, monitor])
        else:
            self.best_epoch_ = len(history)
            self.best_score_ = None
        # Drop what a fitted model does not need: the validation data held by the split,
        # the copy of the best weights, and the training generators.
        net.train_split = None
        net.k_generator = None
        net.iterator_train__generator = None
        for _, cb in net.callbacks_:
            if isinstance(cb, EarlyStopping):
                cb.best_model_weights_ = None
            if isinstance(cb, EpochScoring):
                cb.y_preds_, cb.y_trues_ = [], []
        self.net_ = net

    # -- inference ----------------------------------------------------------------------
    def _run(self, X, fn):
        check_is_fitted(self, "net_")
        bags, _ = check_bags(X, n_features=self.n_features_in_)
        module = self.net_.module_
        module.eval()
        outs = []
        with torch.inference_mode():
            for xb, mask in iterate_batches(
                bags,
                batch_size=self.batch_size,
                device=self.net_.device,
                num_workers=self.num_workers,
                max_tiles=self.max_batch_tiles,
            ):
                outs.append(fn(module, xb, mask).float().cpu().numpy())
        return np.concatenate(outs)

    def _tile_outputs(self, bag):
        """Raw per-tile module outputs of one bag, (n_tiles, n_outputs)."""
        check_is_fitted(self, "net_")
        [bag], _ = check_bags([bag], n_features=self.n_features_in_, name="bag")
        module = self.net_.module_
        module.eval()
        x = torch.as_tensor(np.asarray(bag, dtype=np.float32), device=self.net_.device)
        with torch.inference_mode():
            return module.tile_scores(x.unsqueeze(0))[0].float().cpu().numpy()

    def _embed(self, X):
        return self._run(X, lambda m, x, mask: m.embed(x, mask))
