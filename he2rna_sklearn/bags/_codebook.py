"""The tile codebook: k-means tile types, and each slide's fractions of them."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._validation import check_bags, check_finite_bag, is_lazy

__all__ = ["TileCodebook", "sample_tiles"]

#: Added to the fractions before the square root (``link="sqrt"``).
SQRT_EPS = 1e-6


def sample_tiles(bags, max_tiles, rng):
    """Up to ``max_tiles`` tiles of ``bags``, the same share of every bag, as float32.

    Parameters
    ----------
    bags : sequence of bags
    max_tiles : int
    rng : numpy.random.Generator

    Returns
    -------
    tiles : ndarray of shape (n, n_features)
    """
    sizes = np.array([b.shape[0] for b in bags])
    share = min(1.0, max_tiles / max(int(sizes.sum()), 1))
    rows = []
    for i, (bag, n) in enumerate(zip(bags, sizes)):
        arr = np.asarray(bag, dtype=np.float32)
        if is_lazy(bag):
            check_finite_bag(arr, i, bag)
        take = n if share >= 1.0 else max(1, int(round(share * n)))
        rows.append(arr if take >= n else arr[np.sort(rng.choice(n, take, replace=False))])
    return np.concatenate(rows)


class TileCodebook(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Tile types learnt by k-means, and each slide's fractions of them.

    ``fit`` standardises the tile features of the training bags and clusters them (k-means
    on up to ``max_tiles`` tiles, drawn evenly from the bags); ``transform`` gives every
    slide the fraction of its tiles in each cluster, a row per slide that any scikit-learn
    model takes. It is a cheap baseline that sees tile types, which mean pooling does not
    (``make_pipeline(TileCodebook(), StandardScaler(), RidgeCV())``), and the start of
    :class:`~he2rna_sklearn.HE2RNARegressor`'s tile-type network.

    Parameters
    ----------
    n_clusters : int, default=8
        Tile types (codewords).
    temperature : float or None, default=None
        None assigns each tile to its nearest codeword. A float gives soft memberships,
        ``softmax(-|z - c_k|^2 / tau)``, with ``tau`` this fraction of the mean squared
        distance of the training tiles to their nearest codeword.
    link : {"identity", "sqrt"}, default="identity"
        ``"sqrt"`` returns the square root of the fractions (it stabilises the variance
        of small fractions, and log-expression follows the log of a tissue's share more
        closely than the share itself).
    max_tiles : int, default=50000
        Tiles k-means is fitted on, at most.
    random_state : int, RandomState instance or None, default=None
        Seeds the tile sample and k-means.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Codewords, in standardised feature units.
    mean_, scale_ : ndarray of shape (n_features,)
        The tile standardisation.
    spread_ : float
        Mean squared distance of the training tiles to their nearest codeword.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import RidgeCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from he2rna_sklearn.bags import TileCodebook
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(30, 4)) + 3 * (rng.random((30, 1)) < p)
    ...         for p in rng.uniform(0, 1, 20)]
    >>> TileCodebook(n_clusters=2, random_state=0).fit_transform(bags).shape
    (20, 2)
    >>> y = np.array([(b[:, 0] > 1.5).mean() for b in bags])
    >>> model = make_pipeline(TileCodebook(2, random_state=0), RidgeCV()).fit(bags, y)
    >>> round(float(model.score(bags, y)), 2) > 0.9
    True
    """

    _parameter_constraints = {
        "n_clusters": [Interval(numbers.Integral, 1, None, closed="left")],
        "temperature": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "link": [StrOptions({"identity", "sqrt"})],
        "max_tiles": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        temperature=None,
        link="identity",
        max_tiles=50_000,
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.temperature = temperature
        self.link = link
        self.max_tiles = max_tiles
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the standardisation and the codewords on the tiles of ``X``; ``y`` is
        ignored."""
        from sklearn.cluster import KMeans

        self._validate_params()
        bags, self.n_features_in_ = check_bags(X)
        rs = check_random_state(self.random_state)
        rng = np.random.default_rng(rs.randint(2**31 - 1))
        tiles = sample_tiles(bags, self.max_tiles, rng)
        if len(tiles) < self.n_clusters:
            raise ValueError(
                f"n_clusters={self.n_clusters} tile types need at least as many tiles, but X "
                f"holds {len(tiles)}; lower n_clusters."
            )
        mean = tiles.mean(axis=0, dtype=np.float64)
        std = tiles.std(axis=0, dtype=np.float64)
        self.mean_ = mean
        self.scale_ = np.where(std > 1e-6 * max(1.0, np.abs(mean).max()), std, 1.0)
        z = ((tiles - mean) / self.scale_).astype(np.float32)
        kmeans = KMeans(self.n_clusters, n_init=1, random_state=rs.randint(2**31 - 1)).fit(z)
        self.cluster_centers_ = kmeans.cluster_centers_.astype(np.float64)
        self.spread_ = max(float(kmeans.inertia_) / len(z), 1e-12)
        self._n_features_out = self.n_clusters
        return self

    def logit_weights(self):
        """``(weight, bias)`` such that soft memberships are ``softmax(z @ weight.T +
        bias)`` for standardised tiles ``z`` (``temperature`` must be set)."""
        check_is_fitted(self, "cluster_centers_")
        if self.temperature is None:
            raise ValueError("Hard assignments (temperature=None) have no logits.")
        tau = float(self.temperature) * self.spread_
        centres = self.cluster_centers_
        return 2.0 * centres / tau, -(centres**2).sum(axis=1) / tau

    def memberships(self, bag):
        """Tile types of one bag, (n_tiles, n_clusters): one-hot rows (hard assignment)
        or soft memberships summing to 1."""
        check_is_fitted(self, "cluster_centers_")
        z = (np.asarray(bag, dtype=np.float64) - self.mean_) / self.scale_
        if self.temperature is None:
            d2 = (z**2).sum(axis=1)[:, None] - 2.0 * z @ self.cluster_centers_.T
            d2 += (self.cluster_centers_**2).sum(axis=1)
            out = np.zeros((len(z), self.n_clusters))
            out[np.arange(len(z)), d2.argmin(axis=1)] = 1.0
            return out
        weight, bias = self.logit_weights()
        logits = z @ weight.T + bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def transform(self, X):
        """Each slide's fractions of the tile types (their square root with
        ``link="sqrt"``), (n_slides, n_clusters)."""
        check_is_fitted(self, "cluster_centers_")
        bags, _ = check_bags(X, n_features=self.n_features_in_)
        out = np.empty((len(bags), self.n_clusters))
        for i, bag in enumerate(bags):
            arr = np.asarray(bag, dtype=np.float64)
            if is_lazy(bag):
                check_finite_bag(arr, i, bag)
            out[i] = self.memberships(arr).mean(axis=0)
        return np.sqrt(out + SQRT_EPS) if self.link == "sqrt" else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
