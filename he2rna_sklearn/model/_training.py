"""Training helpers shared by the estimators: seeds, the validation split, feature
statistics, the options of one training run, and early stopping from a warm start."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit, StratifiedGroupKFold
from sklearn.utils import check_random_state
from skorch.callbacks import EarlyStopping

__all__ = [
    "TrainingOptions",
    "WarmEarlyStopping",
    "draw_seeds",
    "feature_stats",
    "validation_split",
]

_SEED_NAMES = ("torch", "split", "k", "shuffle", "stats")


def draw_seeds(random_state):
    """The seeds of one fit, drawn once from ``random_state``: a dict with the keys
    ``torch`` (initialisation, dropout), ``split``, ``k`` (per-batch k draws), ``shuffle``
    and ``stats`` (feature statistics, the closed-form start's inner folds)."""
    rng = check_random_state(random_state)
    return dict(zip(_SEED_NAMES, (int(s) for s in rng.randint(2**31 - 1, size=5))))


def validation_split(n, groups, validation_fraction, seed, strata=None):
    """Train/validation indices of ``n`` bags for early stopping, by patient with ``groups``.

    ``validation_fraction`` of the patients (``groups``) or, without groups, of the slides
    is held out, at least 2; None holds out nothing (``(arange(n), None)``). With ``strata``
    (e.g. the cancer type of each slide), every stratum is represented in the validation
    set in proportion.
    """
    if validation_fraction is None:
        return np.arange(n), None
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise ValueError(f"groups must have one entry per bag ({n}), got shape {groups.shape}.")
        n_units, unit = len(np.unique(groups)), "patients (groups)"
    else:
        n_units, unit = n, "slides"
    n_valid = max(2, int(np.ceil(validation_fraction * n_units)))
    if n_units - n_valid < 2:
        raise ValueError(
            f"validation_fraction={validation_fraction} needs at least {n_valid + 2} "
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


@dataclass(frozen=True)
class TrainingOptions:
    """What one training run of :meth:`BaseHE2RNA._fit_net` needs beyond the data.

    Attributes
    ----------
    criterion : loss class or instance
        E.g. ``torch.nn.MSELoss``, or a weighted ``CrossEntropyLoss()``.
    n_outputs : int
        Genes or classes.
    output_bias : ndarray of shape (n_outputs,) or None
        The output layer's initial bias.
    monitor : str
        The history column early stopping watches.
    lower_is_better : bool
        The direction of ``monitor``.
    scoring : callable or None
        ``scoring(net, dataset, y)``, computed per epoch under the name ``monitor``; it
        also scores a warm start as epoch 0. None: ``monitor`` is a column skorch records
        itself (``valid_loss``), and a warm start is not scored.
    max_epochs : int or None
        Overrides the estimator's ``max_epochs`` (a refit for a chosen number of epochs).
    groups : ndarray of shape (n_bags,) or None
        Patient ids of all the bags (a closed-form start's inner folds keep patients
        together).
    """

    criterion: Any
    n_outputs: int
    output_bias: np.ndarray | None = None
    monitor: str = "valid_loss"
    lower_is_better: bool = True
    scoring: Callable | None = None
    max_epochs: int | None = None
    groups: np.ndarray | None = None


class WarmEarlyStopping(EarlyStopping):
    """skorch's ``EarlyStopping``, counting a scored warm start as epoch 0.

    Parameters
    ----------
    start_score : float or None, default=None
        The monitored score of the network before training (a warm start). Training then
        stops ``patience`` epochs after it if no epoch beats it, and with ``load_best`` its
        weights are restored. Set it after ``net.initialize()`` with
        ``net.set_params(callbacks__early_stopping__start_score=score)``.
    **kwargs
        As for ``skorch.callbacks.EarlyStopping``.
    """

    def __init__(self, *, start_score=None, **kwargs):
        super().__init__(**kwargs)
        self.start_score = start_score

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        if self.start_score is not None:
            # What EarlyStopping does when an epoch improves: the threshold to beat moves to
            # the score plus (or minus) the minimal improvement, and the weights are kept.
            # (skorch's rule: ``threshold`` itself, or times the score with "rel")
            change = self.threshold * (self.start_score if self.threshold_mode == "rel" else 1.0)
            score = self.start_score
            self.dynamic_threshold_ = score - change if self.lower_is_better else score + change
            if self.load_best:
                self.best_model_weights_ = copy.deepcopy(net.module_.state_dict())
