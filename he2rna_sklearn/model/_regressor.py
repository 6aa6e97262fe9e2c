"""HE2RNARegressor: bags of tile features in, gene expression out."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import (
    ClassNamePrefixFeaturesOutMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted

from ..bags import check_bags
from ..metrics import mean_gene_correlation
from ._base import NETWORK_CONSTRAINTS, BaseHE2RNA

__all__ = ["HE2RNARegressor", "KS_ALL_TILES", "KS_SUPER_TILES"]

#: The paper's top-k values for bags of ~100 super-tiles (the default).
KS_SUPER_TILES = (1, 2, 5, 10, 20, 50, 100)
#: The paper's top-k values for bags of all tiles (up to 8,000 per slide). Large k act as
#: mean pooling on small bags, which suits genes that follow a tissue fraction.
KS_ALL_TILES = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def _valid_mean_r(net, X, y):
    """EpochScoring callable: validation mean per-gene Pearson r (NaN counted as 0)."""
    return mean_gene_correlation(y, net.predict(X))


def check_targets(y, n_bags, name="y"):
    """Validate a target table; returns (Y float32 2-D, column names, was_1d)."""
    names = None
    if hasattr(y, "columns") and hasattr(y, "to_numpy"):  # DataFrame
        names = np.asarray([str(c) for c in y.columns], dtype=object)
        non_numeric = [c for c, t in zip(y.columns, y.dtypes) if not np.issubdtype(t, np.number)]
        if non_numeric:
            raise ValueError(f"{name} has non-numeric columns: {non_numeric[:10]}.")
        values = y.to_numpy(dtype=np.float64)
    elif hasattr(y, "to_numpy") and getattr(y, "ndim", 0) == 1:  # Series
        names = np.asarray([str(y.name) if y.name is not None else "y0"], dtype=object)
        values = y.to_numpy(dtype=np.float64)
    else:
        try:
            values = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric: {exc}") from exc
    was_1d = values.ndim == 1
    if was_1d:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(
            f"{name} must be 1-D or 2-D (n_slides, n_genes), got shape {values.shape}."
        )
    if values.shape[0] != n_bags:
        raise ValueError(
            f"X holds {n_bags} bags but {name} has {values.shape[0]} rows; give one row per bag."
        )
    if values.shape[1] == 0:
        raise ValueError(f"{name} has no columns (genes).")
    if names is None:
        names = np.asarray([f"gene_{j}" for j in range(values.shape[1])], dtype=object)
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))[:10].tolist()
        cols = names[bad.any(axis=0)][:10].tolist()
        raise ValueError(
            f"{name} has NaN or infinite values in rows {rows} and genes {cols}; impute or drop "
            "them before fitting."
        )
    return values.astype(np.float32), names, was_1d


class HE2RNARegressor(
    RegressorMixin, TransformerMixin, ClassNamePrefixFeaturesOutMixin, BaseHE2RNA
):
    """Predict gene expression from bags of tile features (HE2RNA).

    One MLP is shared by all tiles of a slide and gives every tile a score per gene; per
    gene, the slide's prediction is the mean of its k highest tile scores over real tiles
    (padding never counts, and k is clipped to the slide's tile count). In training, one k
    per batch is drawn from ``ks``; at inference the predictions for every k are averaged.
    The output bias starts at the training mean of each gene. Training uses MSE and Adam
    (skorch underneath) and stops early on the validation mean per-gene Pearson r, with the
    best weights restored.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Hidden widths of the per-tile MLP. The paper uses (256, 256) for gene groups and
        (1024, 1024) for all genes.
    activation : {"relu", "gelu", "tanh", "leaky_relu"}, default="relu"
    dropout : float, default=0.25
    standardize : bool, default=True
        Standardise tile features with their training mean and standard deviation
        (estimated on up to 200,000 training tiles) inside the network, and train on
        standardised targets (predictions are mapped back to the original units). Not in
        the paper: it makes training robust to the scale of the backbone's features and
        weighs every gene equally in the loss. With False, as in the paper, the loss is
        the MSE of the raw targets and the output bias starts at each gene's training mean.
    ks : tuple of int, default=(1, 2, 5, 10, 20, 50, 100)
        Top-k values: the paper's set for super-tiles (``KS_SUPER_TILES``). For bags of all
        tiles the paper used ``KS_ALL_TILES`` = (10, 20, 50, ..., 5000). Each k is clipped
        to a bag's tile count, so a k above it means mean pooling for that bag.
    max_epochs : int, default=200
    batch_size : int, default=16
        Slides per batch; bags are padded per batch.
    lr : float, default=3e-4
        Adam learning rate.
    weight_decay : float, default=0.0
    patience : int, default=20
        Epochs without improvement of the validation score before stopping.
    validation_fraction : float or None, default=0.1
        Fraction of patients (``groups``) or, without groups, of slides held out for early
        stopping. None trains for ``max_epochs`` with no validation.
    device : {"auto", "cpu", "cuda"}, default="auto"
        ``"auto"`` trains on CUDA when present.
    max_batch_tiles : int or None, default=65536
        Largest number of padded tiles processed at once. A batch with more is split into
        chunks whose gradients accumulate before the optimizer step (the same update,
        up to rounding), so memory stays bounded with bags of thousands of tiles.
    num_workers : int, default=0
        DataLoader workers (useful for bags read lazily from disk).
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, dropout, shuffling, the k draws and the validation split.
    verbose : int, default=0
        1 prints skorch's epoch table.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted network; ``net_.history`` holds the per-epoch losses and scores.
    n_features_in_ : int
        Tile feature dimension.
    gene_names_ : ndarray of str
        Names of the targets (DataFrame columns, else ``gene_0``, ``gene_1``...).
    n_outputs_ : int
    best_epoch_ : int
        Epoch whose weights were kept (the last one without validation).
    best_score_ : float or None
        Validation mean per-gene Pearson r at ``best_epoch_``.

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn import HE2RNARegressor
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(rng.integers(5, 30), 16)).astype("float32")
    ...         for _ in range(40)]
    >>> y = np.array([[b[:, 0].max(), b[:, 1].mean()] for b in bags])
    >>> model = HE2RNARegressor(hidden_layer_sizes=(32,), max_epochs=30,
    ...                         random_state=0).fit(bags, y)
    >>> model.predict(bags).shape, model.transform(bags).shape
    ((40, 2), (40, 32))
    """

    __metadata_request__fit = {"groups": True}

    _parameter_constraints = dict(NETWORK_CONSTRAINTS)

    def __init__(
        self,
        hidden_layer_sizes=(256, 256),
        activation="relu",
        dropout=0.25,
        standardize=True,
        ks=(1, 2, 5, 10, 20, 50, 100),
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

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X, y, groups=None):
        """Fit the network.

        Parameters
        ----------
        X : sequence of bags
            One (n_tiles, n_features) array or :class:`Bag` per slide.
        y : array-like or DataFrame of shape (n_slides, n_genes) or (n_slides,)
            Expression (e.g. log10(1 + FPKM-UQ)). DataFrame columns become ``gene_names_``.
        groups : array-like of shape (n_slides,), optional
            Patient ids: the early-stopping validation split keeps each patient's slides on
            one side. Routed under ``sklearn.set_config(enable_metadata_routing=True)``.

        Returns
        -------
        self
        """
        self._validate_params()
        self._check_architecture()
        bags, _ = check_bags(X)
        Y, names, was_1d = check_targets(y, len(bags))
        seeds = self._seeds()
        train, valid = self._validation_split(len(bags), groups, seeds["split"])
        y_mean = np.zeros(Y.shape[1], np.float32)
        y_scale = np.ones(Y.shape[1], np.float32)
        if self.standardize:
            y_mean = Y[train].mean(axis=0)
            std = Y[train].std(axis=0)
            y_scale = np.where(std > 1e-12, std, 1.0).astype(np.float32)
        Y = (Y - y_mean) / y_scale
        self._fit_net(
            bags,
            Y,
            train,
            valid,
            seeds,
            n_outputs=Y.shape[1],
            criterion=torch.nn.MSELoss,
            output_bias=Y[train].mean(axis=0),
            monitor="valid_r",
            lower_is_better=False,
            scoring=_valid_mean_r,
        )
        self.gene_names_ = names
        self.n_outputs_ = Y.shape[1]
        self._y_was_1d = was_1d
        self._y_mean, self._y_scale = y_mean, y_scale
        return self

    def predict(self, X):
        """Predicted expression, (n_slides, n_genes) (1-D if ``y`` was 1-D in fit)."""
        pred = self._run(X, lambda m, x, mask: m(x, mask)) * self._y_scale + self._y_mean
        return pred[:, 0] if self._y_was_1d else pred

    def transform(self, X):
        """Slide-level transcriptomic embedding, (n_slides, hidden_layer_sizes[-1]).

        The embedding is the last hidden layer of the per-tile MLP (after its activation),
        averaged over the slide's real tiles: the representation from which the genes are
        predicted, as reused for MSI transfer in the paper (there a 256-d hidden layer).
        With no hidden layers it is the mean tile feature vector.
        """
        return self._embed(X)

    def predict_tiles(self, bag, genes=None):
        """Per-tile scores of one bag: the virtual spatialization.

        These are the MLP outputs before top-k pooling, in the units of ``y``. For a bag of
        super-tiles each row is a super-tile; :func:`he2rna_sklearn.spatial.tile_layout`
        paints them back on the source tiles.

        Parameters
        ----------
        bag : Bag or array-like of shape (n_tiles, n_features)
        genes : str or sequence of str, optional
            One gene (its scores), or a gene set (the mean over its genes of their
            z-scored tile scores). Default: every gene.

        Returns
        -------
        scores : ndarray of shape (n_tiles, n_genes), or (n_tiles,) with ``genes``
        """
        columns = None
        if genes is not None:
            check_is_fitted(self, "net_")
            names = list(self.gene_names_)
            wanted = [genes] if isinstance(genes, str) else list(genes)
            missing = [g for g in wanted if g not in names]
            if missing or not wanted:
                raise ValueError(
                    f"Unknown genes {missing or wanted}; the model predicts "
                    f"{names[:10]}{'...' if len(names) > 10 else ''}."
                )
            columns = [names.index(g) for g in wanted]
        scores = self._tile_outputs(bag)
        scores = scores * self._y_scale + self._y_mean
        if columns is None:
            return scores
        if isinstance(genes, str):
            return scores[:, columns[0]]
        chosen = scores[:, columns]
        std = chosen.std(axis=0)
        z = (chosen - chosen.mean(axis=0)) / np.where(std > 0, std, 1.0)
        return z.mean(axis=1)

    def score(self, X, y, sample_weight=None):
        """Mean over genes of the Pearson r between predictions and ``y``.

        A gene with an undefined correlation (constant) counts as r = 0.
        """
        if sample_weight is not None:
            raise ValueError("HE2RNARegressor.score does not support sample_weight.")
        check_is_fitted(self, "net_")
        Y, _, _ = check_targets(y, len(X))
        pred = self.predict(X)
        return mean_gene_correlation(Y, pred.reshape(len(Y), -1))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
