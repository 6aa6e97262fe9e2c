"""Bag pooling: one row per slide, for slide-level baselines in ordinary pipelines."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._spec import check_fitted_bags, fitted_feature_spec
from ._validation import check_bags, check_finite_bag, is_lazy

__all__ = ["BagPooling"]

_NAMED = {
    "mean": lambda a: a.mean(axis=0),
    "max": lambda a: a.max(axis=0),
    "min": lambda a: a.min(axis=0),
    "std": lambda a: a.std(axis=0),
}


class BagPooling(TransformerMixin, BaseEstimator):
    """Pool each bag of tile features into one vector per slide.

    The slide-level baseline every HE2RNA model should be compared with:
    ``make_pipeline(BagPooling(), StandardScaler(), RidgeCV())`` is a ridge regression on
    mean-pooled tile features, which works in ``GridSearchCV`` and
    :func:`~he2rna_sklearn.evaluation.cross_validate_genes` like any estimator. A linear
    tile scorer with mean pooling is exactly such a linear model, so a deep model that does
    not beat this baseline has not earned its keep.

    Parameters
    ----------
    stats : str, float or sequence of them, default="mean"
        The statistics concatenated per feature: ``"mean"``, ``"max"``, ``"min"``,
        ``"std"``, or a quantile in [0, 1] (e.g. 0.9).

    Attributes
    ----------
    n_features_in_ : int
        Tile feature dimension.
    feature_spec_ : dict
        The features it was fitted on (:func:`~he2rna_sklearn.bags.feature_spec`: encoder,
        weights, dimension, µm/px, tile size, from the bags' ``meta``); ``transform``
        refuses bags of other features. Plain arrays carry no spec and are checked for
        their dimension only.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import RidgeCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from he2rna_sklearn.bags import BagPooling
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(rng.integers(5, 30), 4)) for _ in range(20)]
    >>> BagPooling(stats=["mean", 0.9]).fit_transform(bags).shape
    (20, 8)
    >>> y = np.array([b[:, 0].mean() for b in bags])
    >>> baseline = make_pipeline(BagPooling(), StandardScaler(), RidgeCV()).fit(bags, y)
    >>> baseline.predict(bags).shape
    (20,)
    """

    _parameter_constraints = {"stats": [str, numbers.Real, "array-like"]}

    def __init__(self, stats="mean"):
        self.stats = stats

    def _check_stats(self):
        stats = [self.stats] if isinstance(self.stats, (str, numbers.Real)) else self.stats
        stats = list(stats)
        if not stats:
            raise ValueError("stats must name at least one statistic.")
        for s in stats:
            if isinstance(s, str):
                if s not in _NAMED:
                    raise ValueError(
                        f"Unknown statistic {s!r} in stats; use {sorted(_NAMED)} or a quantile "
                        "in [0, 1]."
                    )
            elif not (isinstance(s, numbers.Real) and 0 <= s <= 1):
                raise ValueError(f"A quantile in stats must be in [0, 1], got {s!r}.")
        if len(set(map(str, stats))) != len(stats):
            raise ValueError(f"stats has duplicates: {stats}.")
        return stats

    def fit(self, X, y=None):
        """Check the parameters and record the features (count and spec); pooling learns
        nothing else."""
        self._validate_params()
        self._check_stats()
        bags, self.n_features_in_ = check_bags(X)
        self.feature_spec_ = fitted_feature_spec(bags)
        return self

    def transform(self, X):
        """Pooled features, (n_slides, n_features * len(stats)), float64."""
        check_is_fitted(self, "n_features_in_")
        stats = self._check_stats()
        bags = check_fitted_bags(self, X)
        out = np.empty((len(bags), self.n_features_in_ * len(stats)), dtype=np.float64)
        for i, bag in enumerate(bags):
            arr = np.asarray(bag, dtype=np.float64)
            if is_lazy(bag):  # read from disk only now
                check_finite_bag(arr, i, bag)
            parts = [
                _NAMED[s](arr) if isinstance(s, str) else np.quantile(arr, float(s), axis=0)
                for s in stats
            ]
            out[i] = np.concatenate(parts)
        return out

    def get_feature_names_out(self, input_features=None):
        """``<stat>_f<j>`` for every statistic and tile feature, e.g. ``mean_f0``."""
        check_is_fitted(self, "n_features_in_")
        names = []
        for s in self._check_stats():
            label = s if isinstance(s, str) else f"q{float(s):g}"
            names += [f"{label}_f{j}" for j in range(self.n_features_in_)]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
