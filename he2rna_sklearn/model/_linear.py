"""Linear models of slide-level features: reduced-rank ridge and a tuned choice of family.

Gene expression of a tumour is driven by a handful of tissue programmes, so the coefficient
matrix of a multi-output regression of thousands of genes is close to low rank. Three
linear families use that to different degrees, and all three come from one singular value
decomposition of the (centred) design ``X = U diag(s) V^T``:

* ridge: ``B = V diag(s / (s^2 + alpha)) U^T Y``;
* PCA-r + ridge: the same sum over the first ``r`` components only;
* reduced-rank ridge (Mukherjee & Zhu, 2011): the ridge solution projected on the ``r``
  leading right singular vectors of its own fitted values, ``B_r = B W_r W_r^T``.

:class:`TunedLinearRegressor` chooses the family, ``alpha`` and ``r`` by an inner
cross-validation, grouped by patient when ``groups`` are given, on the training slides
only. :func:`select_reduced_rank` does the same for one family and serves the closed-form
start of the tile-type network.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import GroupKFold, KFold
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "DEFAULT_ALPHAS",
    "DEFAULT_RANKS",
    "ReducedRankRidge",
    "TunedLinearRegressor",
    "describe_linear",
    "select_reduced_rank",
]

#: Penalties tried by :class:`TunedLinearRegressor` (features standardised beforehand).
DEFAULT_ALPHAS = tuple(np.logspace(-2, 5, 15))
#: Ranks tried by :class:`TunedLinearRegressor` for PCA-r + ridge and reduced-rank ridge.
DEFAULT_RANKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
_FAMILIES = ("ridge", "pca", "rrr")


def _standardize_targets(Y):
    mean = Y.mean(axis=0)
    std = Y.std(axis=0)
    return mean, np.where(std > 1e-12, std, 1.0)


class _Path:
    """Every candidate's coefficients on one training set, from one SVD.

    ``X`` and ``Y`` are centred here; coefficients act on centred features and give
    centred targets.
    """

    def __init__(self, X, Y):
        self.x_mean = X.mean(axis=0)
        self.y_mean = Y.mean(axis=0)
        U, s, Vt = np.linalg.svd(X - self.x_mean, full_matrices=False)
        keep = s > 1e-10 * (s[0] if len(s) else 0.0)
        self.U, self.s, self.Vt = U[:, keep], s[keep], Vt[keep]
        self.UtY = self.U.T @ (Y - self.y_mean)  # (m, G)
        self.gram = self.UtY @ self.UtY.T  # (m, m)

    def reduced(self, alpha):
        """(m, G) ridge coefficients in the basis ``Vt``, and the right singular vectors
        (G-space, leading first) of the ridge fit, for the rank truncation.

        The fit's right singular vectors come from the (m, m) eigenproblem of its Gram
        matrix, not from an SVD of the (m, G) fit: thousands of genes cost one product.
        """
        shrink = self.s / (self.s**2 + alpha)
        C = shrink[:, None] * self.UtY
        d = self.s**2 * shrink  # U^T (X B) = diag(d) U^T Y: same right vectors as X B
        values, vectors = np.linalg.eigh(d[:, None] * self.gram * d[None, :])
        order = np.argsort(values)[::-1]
        values, vectors = values[order], vectors[:, order]
        keep = values > 1e-12 * max(values[0], 1e-300) if len(values) else values > 0
        Wt = (vectors[:, keep] / np.sqrt(values[keep])).T @ (d[:, None] * self.UtY)
        return C, Wt

    def coef(self, family, alpha, rank):
        """(p, G) coefficients of one candidate."""
        C, Wt = self.reduced(alpha)
        if family == "pca":
            r = min(rank, len(self.s))
            return self.Vt[:r].T @ C[:r]
        B = self.Vt.T @ C
        if family == "rrr" and rank is not None and rank < Wt.shape[0]:
            B = (B @ Wt[:rank].T) @ Wt[:rank]
        return B


def _candidates(families, alphas, ranks):
    out = []
    for family in families:
        for alpha in alphas:
            for rank in [None] if family == "ridge" else ranks:
                out.append((family, float(alpha), None if rank is None else int(rank)))
    return out


def _inner_cv(n, groups, n_splits, random_state):
    """The inner folds: by patient with ``groups``, else by slide (shuffled, seeded)."""
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise ValueError("The inner cross-validation needs at least 2 patients (groups).")
        return GroupKFold(min(n_splits, n_groups)).split(np.zeros(n), groups=groups)
    if n < 2:
        raise ValueError(f"The inner cross-validation needs at least 2 slides, got {n} sample.")
    return KFold(min(n_splits, n), shuffle=True, random_state=random_state).split(np.zeros(n))


def _cv_errors(X, Z, groups, candidates, n_splits, random_state):
    """Summed squared error of each candidate on the held-out inner folds (Z: standardised
    targets, so every gene weighs the same)."""
    errors = np.zeros(len(candidates))
    for fit_rows, held in _inner_cv(len(X), groups, n_splits, random_state):
        path = _Path(X[fit_rows], Z[fit_rows])
        held_x = (X[held] - path.x_mean) @ path.Vt.T  # (h, m)
        cache = {}
        for j, (family, alpha, rank) in enumerate(candidates):
            if alpha not in cache:
                cache[alpha] = path.reduced(alpha)
            C, Wt = cache[alpha]
            if family == "pca":
                r = min(rank, len(path.s))
                pred = held_x[:, :r] @ C[:r]
            else:
                pred = held_x @ C
                if family == "rrr" and rank < Wt.shape[0]:
                    pred = (pred @ Wt[:rank].T) @ Wt[:rank]
            errors[j] += ((pred + path.y_mean - Z[held]) ** 2).sum()
    return errors


def select_reduced_rank(
    X, Y, groups=None, *, families=("rrr",), alphas, ranks, n_splits=5, random_state=0
):
    """The candidate with the lowest inner-CV error, and its coefficients on all of ``X``.

    Targets are standardised per gene for the choice and the fit (every gene weighs the
    same), and the coefficients map back to the units of ``Y``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_targets)
    groups : array-like of shape (n_samples,), optional
        Patient ids: inner folds keep a patient's slides together.
    families : tuple of {"ridge", "pca", "rrr"}
    alphas, ranks : sequences
    n_splits : int
    random_state : int
        Seeds the inner folds without ``groups``.

    Returns
    -------
    choice : dict
        ``family``, ``alpha``, ``rank``, ``coef`` (n_features, n_targets), ``intercept``
        (n_targets,), ``cv_errors`` (one per candidate) and ``candidates``.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    y_mean, y_scale = _standardize_targets(Y)
    Z = (Y - y_mean) / y_scale
    candidates = _candidates(families, alphas, ranks)
    errors = _cv_errors(X, Z, groups, candidates, n_splits, random_state)
    family, alpha, rank = candidates[int(np.argmin(errors))]
    path = _Path(X, Z)
    coef = path.coef(family, alpha, rank) * y_scale
    intercept = y_mean + path.y_mean * y_scale - path.x_mean @ coef
    return {
        "family": family,
        "alpha": alpha,
        "rank": rank,
        "coef": coef,
        "intercept": intercept,
        "cv_errors": errors,
        "candidates": candidates,
    }


class _LinearPrediction(RegressorMixin):
    """``X @ coef_.T + intercept_`` for the linear models here (1-D when ``y`` was), and
    their tags: several targets at once."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def predict(self, X):
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        pred = X @ self.coef_.T + self.intercept_
        return pred[:, 0] if self._1d else pred


class ReducedRankRidge(_LinearPrediction, BaseEstimator):
    """Ridge regression with its coefficient matrix truncated to a rank.

    The ridge solution ``B`` is projected on the ``rank`` leading right singular vectors of
    its fitted values ``X B`` (reduced-rank ridge regression, Mukherjee & Zhu, 2011), so
    that every target is predicted from the same ``rank`` combinations of the features: a
    good prior when thousands of genes follow a few tissue programmes. Targets are
    standardised per column for the truncation, so every gene counts the same.

    Parameters
    ----------
    alpha : float, default=1.0
        Ridge penalty (on centred features, as :class:`~sklearn.linear_model.Ridge`).
    rank : int or None, default=None
        Rank of the coefficient matrix; None keeps the ridge solution.

    Attributes
    ----------
    coef_ : ndarray of shape (n_targets, n_features)
    intercept_ : ndarray of shape (n_targets,)
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn.model import ReducedRankRidge
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 10))
    >>> Y = X[:, :2] @ rng.normal(size=(2, 30))  # rank 2
    >>> model = ReducedRankRidge(alpha=0.1, rank=2).fit(X, Y)
    >>> np.linalg.matrix_rank(model.coef_)
    np.int64(2)
    """

    _parameter_constraints = {
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "rank": [Interval(numbers.Integral, 1, None, closed="left"), None],
    }

    def __init__(self, alpha=1.0, rank=None):
        self.alpha = alpha
        self.rank = rank

    def fit(self, X, y):
        self._validate_params()
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        self._1d = y.ndim == 1
        Y = y[:, None] if self._1d else y
        y_mean, y_scale = _standardize_targets(Y)
        path = _Path(X, (Y - y_mean) / y_scale)
        family = "ridge" if self.rank is None else "rrr"
        coef = path.coef(family, float(self.alpha), self.rank) * y_scale
        self.coef_ = coef.T
        self.intercept_ = y_mean + path.y_mean * y_scale - path.x_mean @ coef
        return self


class TunedLinearRegressor(_LinearPrediction, BaseEstimator):
    """Ridge, PCA-r + ridge or reduced-rank ridge, chosen by inner cross-validation.

    The cheap baseline that every HE2RNA report sits beside: on each slide's mean tile
    features (``make_pipeline(BagPooling(), StandardScaler(), TunedLinearRegressor())``,
    see :func:`~he2rna_sklearn.evaluation.tuned_linear_baseline`), it picks the family,
    the penalty and the rank with the lowest squared error (targets standardised per gene)
    in an inner ``GroupKFold`` by patient on the training slides only, then refits the
    choice on all of them.

    Parameters
    ----------
    families : tuple of {"ridge", "pca", "rrr"}, default=("ridge", "pca", "rrr")
    alphas : array-like, default=DEFAULT_ALPHAS
        ``numpy.logspace(-2, 5, 15)``: penalties for standardised features.
    ranks : array-like of int, default=DEFAULT_RANKS
        (1, 2, 3, 4, 6, 8, 12, 16, 24, 32).
    cv : int, default=5
        Inner folds (``GroupKFold`` with ``groups``, else a seeded ``KFold``).
    random_state : int, RandomState instance or None, default=0
        Seeds the inner ``KFold`` without ``groups``.

    Attributes
    ----------
    family_ : str
        The family chosen: "ridge", "pca" (PCA-r + ridge) or "rrr" (reduced-rank ridge).
    alpha_ : float
    rank_ : int or None
        None for ridge.
    description_ : str
        The choice in words, e.g. "reduced-rank ridge (rank 4, alpha 100)".
    cv_results_ : dict
        ``family``, ``alpha``, ``rank`` and ``mean_squared_error`` (standardised targets,
        mean over slides and genes) of every candidate.
    coef_ : ndarray of shape (n_targets, n_features)
    intercept_ : ndarray of shape (n_targets,)
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn.model import TunedLinearRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 40))
    >>> Y = X[:, :2] @ rng.normal(size=(2, 200)) + 0.5 * rng.normal(size=(60, 200))
    >>> TunedLinearRegressor().fit(X, Y).family_
    'rrr'
    """

    __metadata_request__fit = {"groups": True}

    _parameter_constraints = {
        "families": ["array-like"],
        "alphas": ["array-like"],
        "ranks": ["array-like"],
        "cv": [Interval(numbers.Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        families=_FAMILIES,
        alphas=DEFAULT_ALPHAS,
        ranks=DEFAULT_RANKS,
        cv=5,
        random_state=0,
    ):
        self.families = families
        self.alphas = alphas
        self.ranks = ranks
        self.cv = cv
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        """Choose the family, penalty and rank by inner CV, then fit on all of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_slides, n_features)
        y : array-like of shape (n_slides, n_genes) or (n_slides,)
        groups : array-like of shape (n_slides,), optional
            Patient ids: the inner folds keep each patient's slides together.

        Returns
        -------
        self
        """
        self._validate_params()
        families = tuple(self.families)
        unknown = sorted(set(families) - set(_FAMILIES))
        if unknown or not families:
            raise ValueError(f"families must be a non-empty subset of {_FAMILIES}, got {families}.")
        alphas = np.asarray(self.alphas, dtype=np.float64).ravel()
        ranks = np.asarray(self.ranks).ravel()
        if not len(alphas) or (alphas < 0).any():
            raise ValueError(f"alphas must be non-negative penalties, got {self.alphas}.")
        if set(families) & {"pca", "rrr"} and (not len(ranks) or (ranks < 1).any()):
            raise ValueError(f"ranks must be positive integers, got {self.ranks}.")
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        self._1d = y.ndim == 1
        Y = y[:, None] if self._1d else y
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (len(X),):
                raise ValueError(
                    f"groups must have one entry per slide ({len(X)}), got {groups.shape}."
                )
        seed = self.random_state
        if not isinstance(seed, numbers.Integral):
            seed = int(check_random_state(seed).randint(2**31 - 1))
        choice = select_reduced_rank(
            X,
            Y,
            groups,
            families=families,
            alphas=alphas,
            ranks=[int(r) for r in ranks],
            n_splits=self.cv,
            random_state=int(seed),
        )
        self.family_, self.alpha_, self.rank_ = choice["family"], choice["alpha"], choice["rank"]
        self.coef_ = choice["coef"].T
        self.intercept_ = choice["intercept"]
        candidates = choice["candidates"]
        self.cv_results_ = {
            "family": np.array([c[0] for c in candidates]),
            "alpha": np.array([c[1] for c in candidates]),
            "rank": np.array([-1 if c[2] is None else c[2] for c in candidates]),
            "mean_squared_error": choice["cv_errors"] / Y.size,
        }
        self.description_ = describe_linear(self.family_, self.alpha_, self.rank_)
        return self


def describe_linear(family, alpha, rank):
    """A linear choice in words, e.g. ``"reduced-rank ridge (rank 4, alpha 100)"``."""
    name = {"ridge": "ridge", "pca": "PCA-r + ridge", "rrr": "reduced-rank ridge"}[family]
    parts = ([] if rank is None else [f"rank {rank}"]) + [f"alpha {alpha:.3g}"]
    return f"{name} ({', '.join(parts)})"
