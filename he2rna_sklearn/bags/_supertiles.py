"""Super-tiles: per-slide k-means (on tile positions, or on features) that averages each
cluster's tile features."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from ._bag import Bag
from ._spec import check_fitted_bags, fitted_feature_spec
from ._validation import bag_label, check_bags, check_finite_bag

__all__ = ["SuperTiles"]


class SuperTiles(TransformerMixin, BaseEstimator):
    """Reduce each bag to clusters of tiles ("super-tiles"), as in HE2RNA.

    For each slide, k-means on the tiles' level-0 coordinates groups them into
    ``n_clusters`` spatially compact clusters (fewer when a slide has fewer tiles); each
    super-tile's features are the mean of its members' features. The output bags keep the
    tile-to-cluster ``assignment`` and the source ``tile_coords``, so that super-tile scores
    can be painted back onto tiles. The coordinates' unit does not matter to k-means (µm
    from STAMP files work); each output bag keeps its input's ``meta``, so its
    ``coords_unit`` says the unit of ``coords`` and ``tile_coords`` too. With
    ``cluster_on="features"``, k-means runs on the tile
    features instead (SEQUOIA's choice): a super-tile gathers tiles that look alike wherever
    they lie, and bags need no coordinates.

    SEQUOIA's input (its ``cluster_features``, checked against ``kmean_features.py`` of
    gevaertlab/sequoia-pub): per slide, ``KMeans(n_clusters=100, random_state=0)`` on the
    tile features, and each cluster's mean feature vector, in the k-means label order;
    slides with fewer than 100 tiles get no input (they are skipped), and an empty cluster
    would give a row of NaN. ``SuperTiles(n_clusters=100, cluster_on="features",
    cluster_order="kmeans")`` builds the same kind of input: one k-means run (k-means++,
    ``n_init=1``, as ``n_init="auto"`` does), rows in the k-means label order; an empty
    cluster is dropped (a model needing exactly 100 rows then refuses the bag by name),
    and a slide with fewer tiles than ``n_clusters`` keeps one super-tile per tile. Unlike
    SEQUOIA, which seeds every slide's k-means with 0, each slide gets its own seed drawn
    from ``random_state``, so the clusters follow SEQUOIA's procedure without being
    bit-identical to its files.

    Super-tiles turn bags into bags, not into a 2-D table: ``set_output`` is accepted (so
    that ``Pipeline.set_output`` reaches the estimators after it) and the output stays a
    list of bags whatever the container asked for.

    Parameters
    ----------
    n_clusters : int, default=100
        Super-tiles per slide (the paper's value), capped at each slide's tile count.
    cluster_on : {"coords", "features"}, default="coords"
        Cluster tiles by position (the paper's) or by feature vector (SEQUOIA's).
    cluster_order : {"first_tile", "kmeans"}, default="first_tile"
        Order of the super-tiles in each output bag: by the first tile (in the bag's
        order) of each cluster, or k-means' own label order (SEQUOIA's: its models add a
        learnt embedding per position, so a pretrained SEQUOIA model wants this order).
    random_state : int, RandomState instance or None, default=None
        Seeds k-means.

    Attributes
    ----------
    n_features_in_ : int
        Tile feature dimension (after ``fit``).
    feature_spec_ : dict
        The features seen in ``fit`` (:func:`~he2rna_sklearn.bags.feature_spec`); after
        ``fit``, ``transform`` refuses bags of another encoder or resolution. Plain arrays
        carry no spec.

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn import Bag, SuperTiles
    >>> rng = np.random.default_rng(0)
    >>> bag = Bag(rng.normal(size=(50, 8)), coords=rng.integers(0, 5000, (50, 2)))
    >>> [st] = SuperTiles(n_clusters=10, random_state=0).fit_transform([bag])
    >>> st.shape, st.assignment.shape
    ((10, 8), (50,))
    """

    _parameter_constraints = {
        "n_clusters": [Interval(numbers.Integral, 1, None, closed="left")],
        "cluster_on": [StrOptions({"coords", "features"})],
        "cluster_order": [StrOptions({"first_tile", "kmeans"})],
        "random_state": ["random_state"],
    }

    def __init__(
        self, n_clusters=100, cluster_on="coords", cluster_order="first_tile", random_state=None
    ):
        self.n_clusters = n_clusters
        self.cluster_on = cluster_on
        self.cluster_order = cluster_order
        self.random_state = random_state

    def set_output(self, *, transform=None):
        """Accept a ``set_output`` request; super-tiles always return a list of bags.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None
            Recorded, and checked to be one of these; the bags are returned unchanged
            because a list of ragged bags has no column-wise form.

        Returns
        -------
        self : SuperTiles
        """
        if transform not in (None, "default", "pandas", "polars"):
            raise ValueError(
                f"transform must be 'default', 'pandas', 'polars' or None, got {transform!r}."
            )
        if transform is not None:
            self._sklearn_output_config = {"transform": transform}
        return self

    def fit(self, X, y=None):
        """Check parameters and record the bags' features (count and spec, which
        ``transform`` then checks). Super-tiles learn nothing else."""
        self._validate_params()
        bags, self.n_features_in_ = check_bags(X, check_finite=False)
        self.feature_spec_ = fitted_feature_spec(bags)
        return self

    def transform(self, X):
        """Return one bag of super-tiles per input bag, in input order.

        Super-tiles learn nothing, so ``transform`` works without ``fit``; after ``fit``
        the bags must have the features it saw (dimension, and the encoder and resolution
        their ``meta`` records: ``feature_spec_``).
        """
        self._validate_params()
        bags = check_fitted_bags(self, X, check_finite=False)
        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=len(bags))
        return [self._reduce(bag, i, seed) for i, (bag, seed) in enumerate(zip(bags, seeds))]

    def _reduce(self, bag, index, seed):
        coords = getattr(bag, "coords", None)
        if coords is None and self.cluster_on == "coords":
            raise ValueError(
                f"{bag_label(bag, index)} has no tile coordinates; SuperTiles clusters tiles "
                "by position. Pass Bag objects with coords (as SlideFeaturizer and load_bags "
                "return), or cluster_on='features'."
            )
        features = np.asarray(bag, dtype=np.float32)
        check_finite_bag(features, index, bag)
        n = features.shape[0]
        k = min(self.n_clusters, n)
        by_kmeans = self.cluster_order == "kmeans"
        if k == n and not (by_kmeans and n > 1):
            labels = np.arange(n)
        else:
            km = KMeans(n_clusters=k, n_init=1, random_state=seed)
            space = coords if self.cluster_on == "coords" else features
            labels = km.fit_predict(np.asarray(space, dtype=np.float64))
        # Number the clusters in k-means' label order, or in order of first appearance
        # (row-major tiles), and drop any empty cluster.
        if by_kmeans:
            order = np.unique(labels)
        else:
            _, first = np.unique(labels, return_index=True)
            order = labels[np.sort(first)]
        remap = np.empty(labels.max() + 1, dtype=np.int64)
        remap[order] = np.arange(len(order))
        labels = remap[labels]
        k = len(order)
        counts = np.bincount(labels, minlength=k).astype(np.float32)
        sums = np.zeros((k, features.shape[1]), dtype=np.float64)
        np.add.at(sums, labels, features)
        means = (sums / counts[:, None]).astype(np.float32)
        centers = None
        if coords is not None:
            centers = np.zeros((k, 2), dtype=np.float64)
            np.add.at(centers, labels, np.asarray(coords, dtype=np.float64))
            centers = np.round(centers / counts[:, None]).astype(np.int64)
        meta = dict(getattr(bag, "meta", {}) or {})
        meta["super_tiles"] = k
        meta["super_tiles_on"] = self.cluster_on
        meta["super_tiles_order"] = self.cluster_order
        return Bag(
            means,
            coords=centers,
            slide_id=getattr(bag, "slide_id", None),
            meta=meta,
            assignment=labels,
            tile_coords=None if coords is None else np.asarray(coords),
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = False
        return tags
