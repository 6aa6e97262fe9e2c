"""SEQUOIA: a linearized transformer over super-tiles, trainable or loaded from a release.

:class:`SequoiaRegressor` trains SEQUOIA's architecture (:mod:`._sequoia_modules`) on your
bags, or is built fitted from one of SEQUOIA's released checkpoints with
:meth:`SequoiaRegressor.from_pretrained` (the checkpoint is read by
:mod:`._sequoia_checkpoint`); :func:`load_sequoia` averages the five folds of a cancer type,
as SEQUOIA reports its predictions.

Over 450 lines: the module is one estimator, whose class saved models name by this module's
path (``persistence.TRUSTED_TYPES``), with its parameters' documentation, its two uses
(``from_pretrained`` and ``fit``), inference and state, and ``load_sequoia``, a loop over
``from_pretrained`` that only this class serves. Reading checkpoints is apart already; what
is left would only scatter one estimator.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import EarlyStopping
from skorch.helper import predefined_split

from .._torch import module_state, rebuild_module, resolve_device
from ..bags import check_bags, check_feature_spec, feature_spec, spec_to_json
from ..metrics import mean_gene_correlation
from ._ensemble import FoldEnsembleRegressor
from ._net import BagDataset, BagNet, collate_bags, iterate_batches
from ._params import NETWORK_CONSTRAINTS
from ._sequoia_checkpoint import SEQUOIA_CANCERS, SEQUOIA_FEATURE_SPEC, read_sequoia_checkpoint
from ._sequoia_modules import SequoiaModule
from ._targets import check_targets, gene_columns, gene_set_score
from ._training import feature_stats, validation_split

__all__ = ["SEQUOIA_CANCERS", "SEQUOIA_FEATURE_SPEC", "SequoiaRegressor", "load_sequoia"]


class SequoiaRegressor(
    RegressorMixin, TransformerMixin, ClassNamePrefixFeaturesOutMixin, BaseEstimator
):
    """SEQUOIA's linearized transformer as a regressor of gene expression from bags.

    Each slide is a set of tokens (super-tiles: SEQUOIA takes the means of 100 k-means
    clusters of a slide's UNI tile features, see
    :class:`~he2rna_sklearn.SuperTiles`). Blocks of "summary mixing" (per token a local
    branch, plus one summary of the slide shared by all tokens, so the cost is linear in
    the number of tokens) and feed-forward layers transform the tokens; the slide
    embedding is their mean, and a layer-normed linear head predicts every gene
    (:class:`~he2rna_sklearn.model.SequoiaModule`).

    Two uses:

    * **Pretrained**: :meth:`from_pretrained` (one fold) or :func:`load_sequoia` (the
      mean of SEQUOIA's five folds) give a fitted model from a released checkpoint, offline.
    * **Trainable head**: ``fit`` trains the architecture on your cohort, seeded by
      ``random_state``, with MSE on standardised targets, AdamW and early stopping on
      a held-out split (by patient with ``groups``), as SEQUOIA trains, at a size that
      fits small cohorts and CPUs by default (SEQUOIA: ``depth=6, n_heads=16``).

    Parameters
    ----------
    depth : int, default=2
        Transformer blocks.
    n_heads : int, default=4
        Summary-mixing heads per block.
    local_size, summary_size, combine_size : int, default=64
        Widths of each head's local branch, summary and output (SEQUOIA's: 64).
    n_positions : int or None, default=None
        With an int, a learnt embedding per token position and exactly that many tokens
        per slide (SEQUOIA's checkpoints: 100, in k-means label order). None: no position
        embedding; slides may have any number of tokens, and their order does not matter.
    standardize : bool, default=True
        Z-score the tile features (with fixed per-feature statistics of the training
        tiles, kept in the module) and train on z-scored targets (predictions are
        returned in the units of ``y``). SEQUOIA's released models take raw UNI features
        and raw targets (``from_pretrained`` sets it to False).
    max_epochs : int, default=200
    batch_size : int, default=16
    lr : float, default=1e-3
        AdamW learning rate (SEQUOIA's).
    weight_decay : float, default=0.0
    patience : int, default=20
        Epochs without a lower validation loss before training stops; the best epoch's
        weights are kept.
    validation_fraction : float or None, default=0.1
        Share of slides (of patients, with ``groups``) held out for early stopping; None
        trains ``max_epochs`` epochs on every slide.
    device : str, default="auto"
        ``"auto"``: CUDA when available, else the CPU.
    max_batch_tiles : int or None, default=65536
        Largest number of padded tokens run at once at inference.
    num_workers : int, default=0
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, the validation split and the batch order.
    verbose : int, default=0

    Attributes
    ----------
    module_ : SequoiaModule
    n_features_in_ : int
    n_outputs_ : int
    gene_names_ : ndarray of str
    y_mean_, y_scale_ : ndarray of shape (n_genes,)
        Target standardisation (0 and 1 for a released checkpoint, which predicts in its
        training units).
    feature_spec_ : dict or None
        Encoder, weights, dimension and resolution of the features the model takes
        (from the training bags' ``meta``, or SEQUOIA's for a released checkpoint); bags
        given to ``predict`` are checked against it
        (:func:`~he2rna_sklearn.bags.check_feature_spec`).
    history_ : DataFrame or None
        Per-epoch losses (None for a released checkpoint).
    best_epoch_ : int or None
    source_ : str or None
        Where a pretrained model came from (``hf-hub:org/name@commit`` or a folder).

    See Also
    --------
    load_sequoia : The five folds of a released cancer type, averaged.
    he2rna_sklearn.HE2RNARegressor : HE2RNA's tile-type network, or the paper's per-tile MLP.

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn.model import SequoiaRegressor
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(rng.integers(5, 30), 16)).astype("float32")
    ...         for _ in range(30)]
    >>> y = np.array([[b[:, 0].mean(), b[:, 1].max()] for b in bags])
    >>> model = SequoiaRegressor(depth=1, n_heads=2, max_epochs=20, random_state=0)
    >>> model.fit(bags, y).predict(bags).shape, model.transform(bags).shape
    ((30, 2), (30, 16))
    """

    __metadata_request__fit = {"groups": True}

    _parameter_constraints = {
        "depth": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_heads": [Interval(numbers.Integral, 1, None, closed="left")],
        "local_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "summary_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "combine_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_positions": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],  # no "auto" here
        # the training parameters it shares with the HE2RNA estimators, constrained alike
        **{
            name: NETWORK_CONSTRAINTS[name]
            for name in (
                "standardize",
                "max_epochs",
                "batch_size",
                "weight_decay",
                "patience",
                "validation_fraction",
                "device",
                "max_batch_tiles",
                "num_workers",
                "random_state",
                "verbose",
            )
        },
    }

    def __init__(
        self,
        depth=2,
        n_heads=4,
        local_size=64,
        summary_size=64,
        combine_size=64,
        n_positions=None,
        standardize=True,
        max_epochs=200,
        batch_size=16,
        lr=1e-3,
        weight_decay=0.0,
        patience=20,
        validation_fraction=0.1,
        device="auto",
        max_batch_tiles=65536,
        num_workers=0,
        random_state=None,
        verbose=0,
    ):
        self.depth = depth
        self.n_heads = n_heads
        self.local_size = local_size
        self.summary_size = summary_size
        self.combine_size = combine_size
        self.n_positions = n_positions
        self.standardize = standardize
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

    # -- loading ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        source,
        *,
        genes=None,
        revision=None,
        cache_dir=None,
        feature_spec=None,
        device="auto",
    ):
        """A fitted model from one released SEQUOIA checkpoint, offline.

        The checkpoint is a folder (or a cached Hugging Face repository) holding
        ``config.json`` (SEQUOIA's keys: ``num_outputs``, ``input_dim``, ``depth``,
        ``nheads``, ``dimensions_f``, ``dimensions_s``, ``dimensions_c``,
        ``num_clusters``) and ``model.safetensors``. The weights load strictly: a missing,
        unexpected or misshapen tensor is an error. Nothing is downloaded and no pickle
        is read.

        Parameters
        ----------
        source : str or Path
            A folder, or a repository id such as ``"gevaertlab/sequoia-coad-0"`` looked
            up in the Hugging Face cache (see :mod:`he2rna_sklearn._hub`).
        genes : sequence of str or path, optional
            The names of the outputs, in order: a list, or a ``.txt`` (one per line) or
            ``.csv`` file (SEQUOIA's ``gene_list.csv``). Default: ``genes.txt`` or
            ``gene_list.csv`` in the checkpoint folder; with neither, an error (outputs
            are never labelled with guessed names).
        revision : str, optional
            Branch, tag or commit of a cached repository.
        cache_dir : str or Path, optional
            The Hugging Face hub cache (default: the environment's).
        feature_spec : dict, optional
            The features the model takes; default :data:`SEQUOIA_FEATURE_SPEC` (UNI)
            when ``input_dim`` is 1024, else only the dimension.
        device : str, default="auto"

        Returns
        -------
        model : SequoiaRegressor
            Fitted.

        Raises
        ------
        WeightsNotFoundError
            If the checkpoint is neither a folder nor in the cache, saying how to get it.
        ValueError
            If the config or weights are not SEQUOIA's, or the gene list does not match.

        Examples
        --------
        >>> from he2rna_sklearn.model import SequoiaRegressor
        >>> model = SequoiaRegressor.from_pretrained(
        ...     "gevaertlab/sequoia-coad-0", genes="gene_list.csv")  # doctest: +SKIP
        """
        checkpoint = read_sequoia_checkpoint(
            source,
            genes=genes,
            revision=revision,
            cache_dir=cache_dir,
            feature_spec=feature_spec,
        )
        args, module = checkpoint.config, checkpoint.module
        model = cls(
            depth=args["depth"],
            n_heads=args["n_heads"],
            local_size=args["local_size"],
            summary_size=args["summary_size"],
            combine_size=args["combine_size"],
            n_positions=args["n_positions"],
            standardize=False,
            device=device,
        )
        model.module_ = module
        model.n_features_in_ = args["n_features"]
        model.n_outputs_ = args["n_outputs"]
        model._n_features_out = module.embedding_size
        model.gene_names_ = checkpoint.gene_names
        model.y_mean_ = np.zeros(args["n_outputs"], dtype=np.float32)
        model.y_scale_ = np.ones(args["n_outputs"], dtype=np.float32)
        model._y_was_1d = False
        model.feature_spec_ = spec_to_json(checkpoint.feature_spec)
        model.history_ = None
        model.best_epoch_ = None
        model.source_ = checkpoint.source
        return model

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X, y, groups=None):
        """Train the network.

        Parameters
        ----------
        X : sequence of bags
            One (n_tokens, n_features) array or :class:`~he2rna_sklearn.Bag` per slide,
            e.g. super-tiles.
        y : array-like or DataFrame of shape (n_slides, n_genes) or (n_slides,)
            Expression; DataFrame columns become ``gene_names_``.
        groups : array-like of shape (n_slides,), optional
            Patient ids: the early-stopping split keeps each patient on one side.

        Returns
        -------
        self
        """
        self._validate_params()
        bags, n_features = check_bags(X)
        spec = feature_spec(bags)
        self._check_tokens(bags)
        Y, names, was_1d = check_targets(y, len(bags), bags=bags)
        rng = check_random_state(self.random_state)
        seed_torch, seed_split, seed_shuffle = (int(s) for s in rng.randint(2**31 - 1, size=3))
        train, valid = validation_split(len(bags), groups, self.validation_fraction, seed_split)
        if self.standardize:
            y_mean = Y[train].mean(axis=0)
            std = Y[train].std(axis=0)
            y_scale = np.where(std > 1e-12, std, 1.0)
        else:
            y_mean, y_scale = np.zeros(Y.shape[1]), np.ones(Y.shape[1])
        Z = ((Y - y_mean) / y_scale).astype(np.float32)
        device = resolve_device(self.device)
        valid_ds = None if valid is None else BagDataset([bags[i] for i in valid], Z[valid])
        callbacks = []
        if valid_ds is not None:
            stopper = EarlyStopping(
                monitor="valid_loss",
                patience=self.patience,
                threshold=1e-4,
                threshold_mode="abs",
                load_best=True,
            )
            callbacks.append(("early_stopping", stopper))
        net = BagNet(
            SequoiaModule,
            torch.nn.MSELoss,
            optimizer=torch.optim.AdamW,
            optimizer__weight_decay=float(self.weight_decay),
            lr=float(self.lr),
            max_epochs=int(self.max_epochs),
            batch_size=int(self.batch_size),
            iterator_train__shuffle=True,
            iterator_train__collate_fn=collate_bags,
            iterator_train__generator=torch.Generator().manual_seed(seed_shuffle),
            iterator_train__num_workers=self.num_workers,
            iterator_valid__collate_fn=collate_bags,
            iterator_valid__num_workers=self.num_workers,
            train_split=None if valid_ds is None else predefined_split(valid_ds),
            callbacks=callbacks,
            device=device.type if device.index is None else str(device),
            verbose=self.verbose,
            module__n_features=n_features,
            module__n_outputs=Y.shape[1],
            module__depth=self.depth,
            module__n_heads=self.n_heads,
            module__local_size=self.local_size,
            module__summary_size=self.summary_size,
            module__combine_size=self.combine_size,
            module__n_positions=self.n_positions,
            module__standardize_input=bool(self.standardize),
        )
        fork = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork):
            torch.manual_seed(seed_torch)
            net.initialize()
            if self.standardize:
                mean, scale = feature_stats([bags[i] for i in train], seed_split)
                with torch.no_grad():
                    net.module_.input_mean.copy_(torch.from_numpy(mean))
                    net.module_.input_scale.copy_(torch.from_numpy(scale))
            net.partial_fit(BagDataset([bags[i] for i in train], Z[train]), None)
        keys = ["epoch", "train_loss", "valid_loss", "dur"]
        history = pd.DataFrame([{k: row.get(k, np.nan) for k in keys} for row in net.history])
        stopper = dict(net.callbacks_).get("early_stopping")
        if valid_ds is not None and stopper is not None and stopper.best_epoch_:
            self.best_epoch_ = int(stopper.best_epoch_)
        else:
            self.best_epoch_ = int(history["epoch"].max())
        history["kept"] = history["epoch"] == self.best_epoch_
        self.history_ = history
        self.module_ = net.module_.eval()
        self.n_features_in_ = n_features
        self.n_outputs_ = Y.shape[1]
        self._n_features_out = self.module_.embedding_size
        self.gene_names_ = names
        self.y_mean_ = y_mean.astype(np.float32)
        self.y_scale_ = y_scale.astype(np.float32)
        self._y_was_1d = was_1d
        self.feature_spec_ = spec_to_json(spec)
        self.source_ = None
        return self

    # -- inference ----------------------------------------------------------------------
    def _check_tokens(self, bags, n_positions=None):
        """Bags must have exactly ``n_positions`` tokens when the model has positions."""
        n_positions = self.n_positions if n_positions is None else n_positions
        if n_positions is None:
            return
        for i, bag in enumerate(bags):
            meta = getattr(bag, "meta", None) or {}
            label = f"bag {i}" + (
                f" (slide '{bag.slide_id}')" if getattr(bag, "slide_id", None) else ""
            )
            if meta.get("super_tiles_on") == "coords":
                raise ValueError(
                    f"{label} holds super-tiles clustered by position; this SEQUOIA model "
                    f"takes {n_positions} clusters of features: SuperTiles(n_clusters="
                    f"{n_positions}, cluster_on='features', cluster_order='kmeans')."
                )
            if bag.shape[0] != n_positions:
                raise ValueError(
                    f"{label} has {bag.shape[0]} tokens; this SEQUOIA model takes exactly "
                    f"{n_positions} (the means of {n_positions} k-means clusters of the "
                    f"slide's tile features: SuperTiles(n_clusters={n_positions}, "
                    "cluster_on='features', cluster_order='kmeans'); SEQUOIA skips slides "
                    "with fewer tiles)."
                )

    def _module(self):
        check_is_fitted(self, "module_")
        return self.module_.to(resolve_device(self.device)).eval()

    def _checked(self, X, name="X"):
        module = self._module()
        bags, _ = check_bags(X, name=name, check_finite=False)
        # The spec first: its errors name the encoder, not only the dimension.
        check_feature_spec(bags, self.feature_spec_, what=f"{type(self).__name__}")
        bags, _ = check_bags(bags, n_features=self.n_features_in_, name=name)
        self._check_tokens(bags, module.n_positions)
        return module, bags

    def _run(self, X, fn):
        module, bags = self._checked(X)
        device = next(module.parameters()).device
        outs = []
        with torch.inference_mode():
            for xb, mask in iterate_batches(
                bags,
                batch_size=self.batch_size,
                device=device,
                num_workers=self.num_workers,
                max_tiles=None if module.n_positions else self.max_batch_tiles,
            ):
                outs.append(fn(module, xb, mask).float().cpu().numpy())
        return np.concatenate(outs)

    def predict(self, X):
        """Predicted expression, (n_slides, n_genes) (1-D if ``y`` was 1-D in fit)."""
        pred = self._run(X, lambda m, x, mask: m(x, mask)) * self.y_scale_ + self.y_mean_
        return pred[:, 0] if self._y_was_1d else pred

    def transform(self, X):
        """Slide embedding, (n_slides, n_features): the mean of the tokens after the
        transformer blocks, before the head (SEQUOIA's ``to_latent``)."""
        return self._run(X, lambda m, x, mask: m.embed(x, mask))

    def predict_tiles(self, bag, genes=None):
        """Per-token scores of one bag, in the units of ``y``, that average to its
        prediction.

        The head's layer norm, taken with the slide's statistics, and its linear layer are
        applied to every token after the transformer blocks
        (:meth:`SequoiaModule.tile_scores`), so the mean of the scores over the bag's
        tokens is :meth:`predict`'s output. Tokens have mixed in the slide's summary: a
        score is a token's share of the slide's prediction. For super-tiles,
        :func:`he2rna_sklearn.spatial.tile_layout` paints them back on the tiles.

        Parameters
        ----------
        bag : Bag or array-like of shape (n_tokens, n_features)
        genes : str or sequence of str, optional
            One gene (its scores), or a gene set (the mean of their z-scored scores).

        Returns
        -------
        scores : ndarray of shape (n_tokens, n_genes), or (n_tokens,) with ``genes``
        """
        module, [bag] = self._checked([bag], name="bag")
        columns = None if genes is None else gene_columns(list(self.gene_names_), genes)
        device = next(module.parameters()).device
        x = torch.as_tensor(np.asarray(bag, dtype=np.float32), device=device).unsqueeze(0)
        with torch.inference_mode():
            scores = module.tile_scores(x)[0].float().cpu().numpy()
        scores = scores * self.y_scale_ + self.y_mean_
        if columns is None:
            return scores
        if isinstance(genes, str):
            return scores[:, columns[0]]
        return gene_set_score(scores[:, columns])

    def score(self, X, y, sample_weight=None):
        """Mean over genes of the Pearson r between predictions and ``y``."""
        if sample_weight is not None:
            raise ValueError("SequoiaRegressor.score does not support sample_weight.")
        check_is_fitted(self, "module_")
        Y, _, _ = check_targets(y, len(X), bags=X)
        return mean_gene_correlation(Y, self.predict(X).reshape(len(Y), -1))

    # -- state --------------------------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())
        module = state.get("module_")
        if isinstance(module, SequoiaModule):
            state["module_"] = module_state(module)
        history = state.get("history_")
        if isinstance(history, pd.DataFrame):
            state["history_"] = {c: history[c].to_numpy() for c in history.columns}
        return state

    def __setstate__(self, state):
        state = dict(state)
        module = state.get("module_")
        if isinstance(module, dict):
            state["module_"] = rebuild_module(lambda config: SequoiaModule(**config), module)
        if isinstance(state.get("history_"), dict):
            state["history_"] = pd.DataFrame(state["history_"])
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def load_sequoia(
    cancer,
    folds=(0, 1, 2, 3, 4),
    *,
    genes=None,
    revision=None,
    cache_dir=None,
    feature_spec=None,
    device="auto",
):
    """SEQUOIA's released models of one cancer type: the mean of its folds, offline.

    SEQUOIA trained one model per fold of a 5-fold split of each TCGA cancer type and
    reports the mean of the five models' predictions; this gives that ensemble.

    Parameters
    ----------
    cancer : str or sequence of str
        A TCGA cancer type (``"coad"``, ``"brca"``..., see :data:`SEQUOIA_CANCERS`): the
        repositories ``gevaertlab/sequoia-{cancer}-{fold}`` are read from the Hugging Face
        cache. Or a sequence of checkpoint folders or repository ids, one per fold.
    folds : sequence of int, default=(0, 1, 2, 3, 4)
        The folds to average (with a cancer type).
    genes, revision, cache_dir, feature_spec, device
        As for :meth:`SequoiaRegressor.from_pretrained` (``revision`` applies to every
        fold).

    Returns
    -------
    model : FoldEnsembleRegressor
        Fitted: ``predict`` is the mean over folds, ``transform`` the folds' slide
        embeddings side by side.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from he2rna_sklearn import SuperTiles
    >>> from he2rna_sklearn.model import load_sequoia
    >>> sequoia = load_sequoia("coad", genes="gene_list.csv")  # doctest: +SKIP
    >>> model = make_pipeline(SuperTiles(100, cluster_on="features", cluster_order="kmeans",
    ...                                  random_state=0), sequoia)  # doctest: +SKIP
    >>> expression = model.predict(uni_bags)  # doctest: +SKIP
    """
    if isinstance(cancer, str) and "/" not in cancer and not Path(cancer).exists():
        name = cancer.lower()
        if name.startswith("tcga-"):
            name = name[5:]
        if name not in SEQUOIA_CANCERS:
            raise ValueError(
                f"SEQUOIA released no models for cancer type {cancer!r}; it has "
                f"{', '.join(SEQUOIA_CANCERS)}. Or pass checkpoint folders or repository ids."
            )
        sources = [f"gevaertlab/sequoia-{name}-{int(f)}" for f in folds]
    else:
        sources = [cancer] if isinstance(cancer, (str, Path)) else list(cancer)
    if not sources:
        raise ValueError("No folds to load: folds is empty.")
    models = [
        SequoiaRegressor.from_pretrained(
            s,
            genes=genes,
            revision=revision,
            cache_dir=cache_dir,
            feature_spec=feature_spec,
            device=device,
        )
        for s in sources
    ]
    return FoldEnsembleRegressor(models).fit()
