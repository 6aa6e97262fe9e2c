"""HE2RNARegressor: bags of tile features in, gene expression out.

Over 450 lines: the module is one estimator, whose class saved models name by this module's
path (``persistence.TRUSTED_TYPES``). Its docstring, which explains the two networks, the
defaults that depart from the paper and every parameter and fitted attribute, is about 215
lines; the code is the regressor's own part of fitting (targets, the start of each network,
the refit) and inference. What it shares with the classifier is in ``_base`` and
``_training``, its networks in ``_tile_types`` and ``_modules``.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import replace

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, RegressorMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..bags import check_bags
from ..metrics import mean_gene_correlation
from ._base import BaseHE2RNA
from ._init_from import check_regressor_source, copy_module, source_estimator
from ._modules import HE2RNAModule
from ._params import NETWORK_CONSTRAINTS, store_params
from ._params import SHARED_DEFAULTS as _D
from ._targets import (
    check_projects,
    check_targets,
    gene_columns,
    gene_set_score,
    per_group_mean_r,
    valid_mean_r,
)
from ._tile_types import TileTypeModule, codebook_solution, set_solution
from ._training import TrainingOptions, feature_stats, validation_split
from ._warm_start import warm_start

__all__ = ["HE2RNARegressor"]

#: Below this ratio of prediction SD to target SD (mean over genes) on the training bags,
#: ``fit`` warns that the model predicts little more than the training mean.
NEAR_CONSTANT_RATIO = 0.1


class HE2RNARegressor(
    RegressorMixin, TransformerMixin, ClassNamePrefixFeaturesOutMixin, BaseHE2RNA
):
    """Predict gene expression from bags of tile features (HE2RNA).

    A network shared by all tiles of a slide scores every tile, the scores are pooled over
    the slide's tiles, and the genes are read out; training uses MSE and Adam (skorch
    underneath) and stops early on the validation mean per-gene Pearson r, with the best
    weights restored. Two networks are available:

    * ``tile_types=128`` (default): the **tile-type network**
      (:class:`~he2rna_sklearn.model.TileTypeModule`). One layer gives every tile a soft
      membership in ``tile_types`` tile types (a soft k-means codebook of the tile
      features); each slide's type fractions (the mean memberships) are read out, in
      square-root units, through a few factors shared by all genes. Bulk expression mixes
      the expression of a slide's tissue types in proportion to their share, and thousands
      of genes follow a handful of tissue programmes: this network learns the tile types
      that the slide-level expression asks for, which a linear model of mean-pooled
      features cannot see. A tile's score for a gene is the prediction for a slide made
      only of tiles like it (the virtual spatialization).
    * ``tile_types=None``: the **paper's network**
      (:class:`~he2rna_sklearn.model.HE2RNAModule`), an MLP of ``hidden_layer_sizes``
      whose per-tile scores are pooled per gene by the mean of the k highest (padding never
      counts, k is clipped to the slide's tile count), averaged over the k values in
      ``ks``. :data:`PAPER_SETTINGS` reproduces the publication with it.

    The defaults depart from the paper where they learn better on cohorts of tens to
    hundreds of slides (``benchmarks/fidelity.py``; the user guide gives the figures and
    what each piece adds):

    * ``tile_types=128``: the tile-type network (above). On the benchmark's three cohorts
      it finds more significant genes than the tuned linear baseline
      (:func:`~he2rna_sklearn.evaluation.tuned_linear_baseline`), which the paper's network
      from its closed-form start only matches.
    * ``init="ridge"``: the network starts in closed form instead of at random: from a
      random start Adam moves the weights by about ``lr`` per step and, with a few steps
      per epoch, the predictions stay shrunk to the training mean. For the tile-type
      network, the start is a k-means codebook of the training tiles and a reduced-rank
      ridge readout of the square roots of the pooled memberships, its penalty and rank
      chosen by an inner cross-validation by patient on the training slides
      (``he2rna_sklearn.model._tile_types``). For the paper's network it is a ridge
      regression on standardised pooled tile features, built inside it
      (``he2rna_sklearn.model._warm_start``), with top-k pooling kept for the genes where an
      inner cross-validation finds it better. The start is scored on the validation slides
      as epoch 0 and kept (and refitted on all training slides) if no epoch beats it.
    * ``k_training="average"``, ``ks=KS_DEFAULT`` (the paper's network only): training
      pools as inference does, over both of the paper's sets of k at once.
    * ``dropout=0.0`` instead of 0.25, ``lr="auto"`` instead of 3e-4 (1e-3 for the
      tile-type network, 1e-4 for the paper's), and ``refit=True``: fine-tuning stays near
      the start, and the slides held out for early stopping are learnt from once it has
      chosen the number of epochs (see below).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Hidden widths of the per-tile MLP. The paper uses (256, 256) for gene groups and
        (1024, 1024) for all genes. With ``init="ridge"`` the first layer holds half as many
        principal directions of the slides' features as its width (+/- pairs).
    activation : {"relu", "gelu", "tanh", "leaky_relu"}, default="relu"
    dropout : float, default=0.0
        Dropout after each hidden layer in training. The paper used 0.25; fine-tuning the
        closed-form start, dropout only perturbs it (on ``benchmarks/fidelity.py``, seed 1,
        at lr 3e-4 without refit: 514 genes significant with 0.25 against 542 without) and
        costs a third of the epoch time.
    standardize : bool, default=True
        Standardise tile features inside the network and train on standardised targets
        (predictions are mapped back to the original units). Not in the paper: it makes
        training robust to the scale of the backbone's features and weighs every gene
        equally in the loss. With ``init="ridge"`` the features are standardised with the
        mean and standard deviation of the training slides' mean features; with
        ``init="random"``, of up to 200,000 training tiles. With False, as in the paper,
        the loss is the MSE of the raw targets. The tile-type network's closed-form start
        chooses its penalty, which fine-tuning keeps, on standardised targets; with False
        that penalty then weighs each gene's readout by the gene's variance.
    ks : tuple of int, default=KS_DEFAULT
        Top-k values, (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000). The paper
        used ``KS_SUPER_TILES`` = (1, ..., 100) on super-tiles and ``KS_ALL_TILES`` =
        (10, ..., 5000) on all tiles. Each k is clipped to a bag's tile count, so a k
        above it means mean pooling for that bag; ``ks=(10**6,)`` is mean pooling.
    k_training : {"average", "random"}, default="average"
        How training pools: ``"average"`` as at inference, the mean over all ``ks`` of the
        top-k means; ``"random"`` draws one k from ``ks`` per batch, as in the paper.
        ``hidden_layer_sizes``, ``activation``, ``dropout``, ``ks`` and ``k_training``
        shape the paper's network only (``tile_types=None``); ``fit`` warns when they are
        set for the tile-type network.
    tile_types : int or None, default=128
        Tile types of the tile-type network (codewords of its soft k-means layer); None
        builds the paper's network instead. Must not exceed the number of training tiles.
    type_temperature : float, default=0.2
        Softness of the tile-type memberships: the softmax temperature, as a fraction of
        the mean squared distance of the training tiles to their nearest codeword (small:
        each tile in its nearest type; large: every tile in every type). Soft memberships
        make smoother maps (``benchmarks/fidelity.py``: lymphocyte-tile AUC 0.85-0.91 with
        hard ones, 0.98 at 0.2).
    type_rank : int or "auto", default="auto"
        Factors of the tile-type readout (the width of ``transform``'s embedding).
        ``"auto"`` lets the closed-form start choose it, with its penalty, by inner
        cross-validation among 1, 2, 3, 4, 6, 8, 12, 16, 24 and 32 (8 with
        ``init="random"``).
    type_link : {"sqrt", "identity"}, default="sqrt"
        How the tile-type network reads each slide's type fractions: in square-root units
        (they stabilise the variance of small fractions, and log-expression follows the
        log of a tissue's share more closely than the share itself), or as they are (the
        slide's prediction is then the mean of its tiles' scores, as in a linear model).
    init : {"ridge", "random"}, default="ridge"
        How the network starts: the closed-form start described above (a ridge readout, of
        the tile-type fractions or of the pooled features), or PyTorch's random
        initialisation with the output bias at the genes' training means, as in the paper.
        Ignored with ``init_from``.
    refit : bool, default=True
        After early stopping chose ``best_epoch_`` on the validation slides, train again
        on every training slide, validation ones included, for that many epochs (from the
        same start), as ``GridSearchCV`` refits with the parameters it chose. Not in the
        paper (False there); it doubles training time at most. Ignored without validation.
        The closed-form start is computed again on every slide, so with ``type_rank="auto"``
        its rank and penalty (``init_rank_``, ``init_alpha_``) are the refit's and may
        differ from those of the run that ``best_epoch_`` and ``history_`` describe.
    init_from : HE2RNARegressor or FrozenEstimator, optional
        A fitted regressor whose weights (and feature standardisation) start this network,
        e.g. the super-tiles model for the all-tiles model, as in the paper. Its network
        (``tile_types``, or hidden layers and activation), feature count and genes must
        match this estimator's. Under ``clone`` (GridSearchCV) wrap it as
        ``FrozenEstimator(fitted_regressor)``.
    clip_at_zero : bool, default=False
        Clip predictions at 0 (the paper applies a ReLU to predictions at evaluation, as
        log-expression is non-negative). Tile scores are not clipped.
    max_epochs : int, default=200
    batch_size : int, default=16
        Slides per batch; bags are padded per batch.
    lr : float or "auto", default="auto"
        Adam learning rate. The paper used 3e-4 from a random start. ``"auto"`` takes the
        rate measured best from the closed-form start for the network built
        (``model._params.AUTO_LR``, ``benchmarks/fidelity.py``): 1e-3 for the tile-type
        network (the same genes as at 1e-4 in a quarter of the epochs), 1e-4 for the
        paper's (it fine-tunes without leaving its ridge start too fast).
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
    module_ : TileTypeModule or HE2RNAModule
        The trained network (``tile_types`` set or None).
    history_ : pandas.DataFrame
        One row per epoch: ``epoch``, ``train_loss``, ``valid_loss`` and ``valid_r`` (the
        early-stopping score) when validating, ``dur`` (seconds), and ``kept`` (True at
        the epoch whose weights were kept).
    best_epoch_ : int
        Epoch chosen by early stopping (the last one without validation). 0 means the
        start (``init="ridge"`` or ``init_from``) beat every epoch on the validation slides.
    refitted_ : bool
        Whether the model was trained again on every training slide for ``best_epoch_``
        epochs (``refit=True`` with validation); ``history_`` is the selection run's.
    best_score_ : float or None
        Validation score at ``best_epoch_``.
    validation_indices_ : ndarray of int or None
        Positions in ``X`` of the slides held out for early stopping (None without
        validation), e.g. to score a baseline on the same slides.
    validation_predictions_ : ndarray of shape (n_validation, n_genes) or None
        The kept model's predictions for those slides, in the units of ``y``, before the
        refit learnt from them: held-out predictions to compare with a baseline fitted on
        the other slides (``he2rna fit`` does).
    init_alpha_ : float
        With ``init="ridge"``: the penalty of the closed-form start (chosen by inner
        cross-validation).
    init_rank_ : int
        With ``init="ridge"`` and ``tile_types``: the rank of the start's readout (chosen
        by inner cross-validation unless ``type_rank`` is an int).
    train_sd_ratio_ : float
        Mean over genes of the SD of the predictions on the training bags over the SD of
        the targets; below 0.1 ``fit`` warns that the model has learned little.
    n_features_in_ : int
        Tile feature dimension.
    feature_spec_ : dict
        The features it was fitted on (encoder, weights, dimension, µm/px, tile size, from
        the bags' ``meta``: :func:`~he2rna_sklearn.bags.feature_spec`); ``predict`` and the
        other methods that take bags refuse bags of other features. Plain arrays carry no
        spec and are checked for their dimension only.
    gene_names_ : ndarray of str
        Names of the targets (DataFrame columns, else ``gene_0``, ``gene_1``...).
    n_outputs_ : int
    y_mean_, y_scale_ : ndarray of shape (n_genes,)
        Target standardisation (0 and 1 with ``standardize=False``).

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn import HE2RNARegressor
    >>> rng = np.random.default_rng(0)
    >>> bags = [rng.normal(size=(rng.integers(5, 30), 16)).astype("float32")
    ...         for _ in range(40)]
    >>> y = np.array([[b[:, 0].max(), b[:, 1].mean()] for b in bags])
    >>> model = HE2RNARegressor(tile_types=16, max_epochs=30, random_state=0).fit(bags, y)
    >>> model.predict(bags).shape, model.predict_tiles(bags[0]).shape
    ((40, 2), (26, 2))
    >>> model.transform(bags).shape == (40, model.init_rank_)
    True

    The paper's network, with top-k pooling (the max of feature 0 is a top-1 gene):

    >>> mlp = HE2RNARegressor(tile_types=None, hidden_layer_sizes=(32,), max_epochs=30,
    ...                       random_state=0).fit(bags, y)
    >>> mlp.transform(bags).shape
    (40, 32)
    >>> model.history_.columns.tolist()
    ['epoch', 'train_loss', 'valid_loss', 'valid_r', 'dur', 'kept']
    """

    __metadata_request__fit = {"groups": True, "projects": True}

    _parameter_constraints = {
        **NETWORK_CONSTRAINTS,
        "tile_types": [Interval(numbers.Integral, 2, None, closed="left"), None],
        "type_temperature": [Interval(numbers.Real, 0, None, closed="neither")],
        "type_rank": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "type_link": [StrOptions({"sqrt", "identity"})],
        "init": [StrOptions({"ridge", "random"})],
        "refit": ["boolean"],
        "clip_at_zero": ["boolean"],
    }

    def __init__(
        self,
        hidden_layer_sizes=_D["hidden_layer_sizes"],
        activation=_D["activation"],
        dropout=_D["dropout"],
        standardize=_D["standardize"],
        ks=_D["ks"],
        k_training=_D["k_training"],
        tile_types=128,
        type_temperature=0.2,
        type_rank="auto",
        type_link="sqrt",
        init="ridge",
        refit=True,
        init_from=_D["init_from"],
        clip_at_zero=False,
        max_epochs=_D["max_epochs"],
        batch_size=_D["batch_size"],
        lr=_D["lr"],
        weight_decay=_D["weight_decay"],
        patience=_D["patience"],
        validation_fraction=_D["validation_fraction"],
        device=_D["device"],
        max_batch_tiles=_D["max_batch_tiles"],
        num_workers=_D["num_workers"],
        random_state=_D["random_state"],
        verbose=_D["verbose"],
    ):
        store_params(self, locals())

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X, y, groups=None, projects=None):
        """Fit the network.

        Parameters
        ----------
        X : sequence of bags
            One (n_tiles, n_features) array or :class:`Bag` per slide.
        y : array-like or DataFrame of shape (n_slides, n_genes) or (n_slides,)
            Expression (e.g. log10(1 + FPKM-UQ)). DataFrame columns become ``gene_names_``.
            Rows are matched to bags by position; a DataFrame indexed by the bags'
            ``slide_id`` must list them in the bags' order (else an error).
        groups : array-like of shape (n_slides,), optional
            Patient ids: the early-stopping validation split keeps each patient's slides on
            one side. Routed under ``sklearn.set_config(enable_metadata_routing=True)``.
        projects : array-like of shape (n_slides,), optional
            The project (cancer type) of each slide, for a pan-cancer model as in the
            paper: the validation split then holds every project in proportion, and early
            stopping monitors the mean over projects of the per-project mean per-gene r.
            Routed metadata, like ``groups``.

        Returns
        -------
        self
        """
        with self._fitting():
            return self._fit(X, y, groups, projects)

    def _fit(self, X, y, groups, projects):
        self._validate_params()
        self._warn_paper_network_parameters()
        hidden, activation, _ = self._check_architecture()
        bags, n_features = check_bags(X)
        Y, names, was_1d = check_targets(y, len(bags), bags=bags)
        projects = check_projects(projects, len(bags))
        if self.init_from is not None:
            check_regressor_source(
                self.init_from,
                n_features,
                hidden if self.tile_types is None else None,
                activation,
                names,
                n_types=self.tile_types,
                link=self.type_link,
                rank=self.type_rank,
            )
        seeds = self._seeds()
        train, valid = validation_split(
            len(bags), groups, self.validation_fraction, seeds["split"], strata=projects
        )
        y_mean, y_scale = self._target_standardization(Y[train])
        Z = (Y - y_mean) / y_scale
        options = replace(
            self._training_options(Z[train], projects, valid),
            groups=None if groups is None else np.asarray(groups),
        )
        self._fit_net(bags, Z, (train, valid), seeds, options)
        self.validation_predictions_ = None
        if valid is not None:  # the kept model's, before any refit sees these slides
            out = self._run([bags[i] for i in valid], lambda m, x, mask: m(x, mask))
            self.validation_predictions_ = self._postprocess(out * y_scale + y_mean, was_1d)
        self.refitted_ = False
        if self.refit and valid is not None:
            self._refit_on_every_slide(
                bags, Z, np.sort(np.concatenate([train, valid])), seeds, options
            )
        self.gene_names_ = names
        self.n_outputs_ = Y.shape[1]
        self.y_mean_, self.y_scale_ = y_mean.astype(np.float32), y_scale.astype(np.float32)
        self._y_was_1d = was_1d
        self._check_learned([bags[i] for i in train], Y[train])
        return self

    def _warn_paper_network_parameters(self):
        """Say so when parameters of the paper's network are set but the tile-type network
        is built: they would otherwise be ignored without a word."""
        if self.tile_types is None:
            return
        names = ("hidden_layer_sizes", "activation", "dropout", "ks", "k_training")
        changed = [
            n
            for n in names
            if np.atleast_1d(getattr(self, n)).tolist() != np.atleast_1d(_D[n]).tolist()
        ]
        if changed:
            warnings.warn(
                f"{', '.join(changed)} shape the paper's network only and are ignored by the "
                f"tile-type network (tile_types={self.tile_types}); pass tile_types=None to "
                "use them.",
                UserWarning,
                stacklevel=4,
            )

    def _target_standardization(self, Y_train):
        """(mean, scale) of the targets: ``init_from``'s, the training slides', or (0, 1)."""
        if self.init_from is not None:
            return source_estimator(self.init_from)._y_standardization()
        if self.standardize:
            std = Y_train.std(axis=0)
            return Y_train.mean(axis=0), np.where(std > 1e-12, std, 1.0).astype(np.float32)
        n_genes = Y_train.shape[1]
        return np.zeros(n_genes, np.float32), np.ones(n_genes, np.float32)

    def _training_options(self, Z_train, projects, valid):
        """MSE on the standardised targets, early stopping on the validation mean per-gene
        r (per project, then averaged, with ``projects``)."""
        monitor, scoring = "valid_r", valid_mean_r
        if projects is not None and valid is not None:
            scoring, usable = per_group_mean_r(projects[valid])
            if not usable:
                raise ValueError(
                    "No project has 3 or more validation slides, so per-project early "
                    "stopping has no score; raise validation_fraction or drop projects=."
                )
            monitor = "valid_r_projects"
        return TrainingOptions(
            criterion=torch.nn.MSELoss,
            n_outputs=Z_train.shape[1],
            output_bias=Z_train.mean(axis=0),
            monitor=monitor,
            lower_is_better=False,
            scoring=scoring,
        )

    def _module_class(self):
        return HE2RNAModule if self.tile_types is None else TileTypeModule

    def _module_params(self, bags, targets, train, options, seeds):
        """The network's arguments; with ``tile_types``, the closed-form start is computed
        here, as its rank (chosen by inner CV) sets the width of the readout."""
        if self.tile_types is None:
            return super()._module_params(bags, targets, train, options, seeds)
        self._solution = None
        if self.init_from is not None:
            config = dict(self._source_module().config)
            rank = config["rank"]
        elif self.init == "ridge":
            groups = None if options.groups is None else options.groups[train]
            self._solution = codebook_solution(
                [bags[i] for i in train],
                targets[train],
                groups,
                n_types=int(self.tile_types),
                temperature=float(self.type_temperature),
                rank=self.type_rank,
                link=self.type_link,
                random_state=seeds["stats"],
            )
            rank = self._solution["rank"]
            self.init_alpha_ = self._solution["alpha"]
            self.init_rank_ = rank
        else:
            rank = 8 if self.type_rank == "auto" else int(self.type_rank)
        mean = scale = None
        if self.standardize and self.init_from is None and self._solution is None:
            mean, scale = feature_stats([bags[i] for i in train], seeds["stats"])
        return dict(
            n_features=bags[0].shape[1],
            n_outputs=options.n_outputs,
            n_types=int(self.tile_types),
            rank=int(rank),
            link=self.type_link,
            output_bias=options.output_bias,
            input_mean=mean,
            input_scale=scale,
        )

    def _start_module(self, module, bags, targets, seeds):
        """``init_from``'s weights, else the closed-form start (``init="ridge"``: the
        codebook and reduced-rank readout with ``tile_types``, else the ridge on pooled
        features), else PyTorch's random initialisation (the output bias at the genes'
        means)."""
        solution = self.__dict__.pop("_solution", None)  # from _module_params; not kept
        if self.init_from is not None:
            copy_module(module, self._source_module())
            return True
        if self.init == "ridge":
            if self.tile_types is None:
                self._ridge_start(module, bags, targets, seeds)
            else:
                set_solution(module, solution)
            return True
        return False

    def _ridge_start(self, module, bags, targets, seeds):
        """Put ``module`` at the ridge regression of ``targets`` on the pooled features of
        ``bags`` (:func:`~he2rna_sklearn.model._warm_start.warm_start`); sets
        ``init_alpha_``, its penalty."""
        self.init_alpha_ = warm_start(module, bags, targets, random_state=seeds["stats"])

    def _output_l2(self, n_slides, n_outputs):
        """The ridge start's penalty, kept in fine-tuning (none for the other starts).

        The start minimises ``sum (y - y_hat)^2 + alpha * sum ||v_g||^2`` over slides and
        genes, with output weights ``[v, -v]`` on the +/- pairs; per sample and gene, as the
        training loss is averaged, that is ``alpha / (2 n G) * ||W_out||^2``.
        """
        if self.init_from is not None or self.init != "ridge":
            return None
        if self.tile_types is not None:  # sum (y - y_hat)^2 + alpha ||V U||^2, per sample
            return self.init_alpha_ / (n_slides * n_outputs)
        return self.init_alpha_ / (2.0 * n_slides * n_outputs)

    def _refit_on_every_slide(self, bags, Z, every, seeds, options):
        """Train again on every training slide, validation ones included, for
        ``best_epoch_`` epochs.

        Early stopping chose the number of epochs; the slides it held out then serve to
        learn too, as ``GridSearchCV(refit=True)`` refits with the chosen parameters. With
        ``best_epoch_ == 0`` (no epoch beat the start) only the start is made again. The
        selection run's ``history_``, ``best_epoch_``, ``best_score_`` and
        ``validation_indices_`` are kept.
        """
        selection = (self.history_, self.best_epoch_, self.best_score_, self.validation_indices_)
        if self.best_epoch_ == 0 and self.tile_types is None:
            self._start_module(self.module_, [bags[i] for i in every], Z[every], seeds)
        else:
            options = replace(
                options, output_bias=Z[every].mean(axis=0), max_epochs=self.best_epoch_
            )
            self._fit_net(bags, Z, (every, None), seeds, options)
        self.history_, self.best_epoch_, self.best_score_, self.validation_indices_ = selection
        self.refitted_ = True

    def _y_standardization(self):
        check_is_fitted(self, "module_")
        return self.y_mean_, self.y_scale_

    def _fitted_genes(self):
        check_is_fitted(self, "module_")
        return list(self.gene_names_)

    def _check_learned(self, bags, Y):
        """Record the prediction spread on the training bags; warn when it is near zero."""
        pred = self.predict(bags).reshape(len(Y), -1)
        std_y = Y.std(axis=0)
        keep = std_y > 1e-12
        ratio = float(np.mean(pred.std(axis=0)[keep] / std_y[keep])) if keep.any() else 0.0
        self.train_sd_ratio_ = ratio
        if ratio < NEAR_CONSTANT_RATIO:
            warnings.warn(
                f"HE2RNARegressor predicts nearly constant values on its own training bags "
                f"(prediction SD is {ratio:.3f} of the target SD, mean over genes): it has "
                "learned little beyond the training mean. See history_ (did training stop "
                "early?), and compare with the tuned linear baseline "
                "(he2rna_sklearn.evaluation.tuned_linear_baseline()).",
                UserWarning,
                stacklevel=3,
            )

    # -- inference ----------------------------------------------------------------------
    def predict(self, X):
        """Predicted expression, (n_slides, n_genes) (1-D if ``y`` was 1-D in fit)."""
        pred = self._run(X, lambda m, x, mask: m(x, mask)) * self.y_scale_ + self.y_mean_
        return self._postprocess(pred, self._y_was_1d)

    def _postprocess(self, pred, was_1d):
        if self.clip_at_zero:
            pred = np.maximum(pred, 0.0)
        return pred[:, 0] if was_1d else pred

    def predict_tiles(self, bag, genes=None):
        """Per-tile scores of one bag: the virtual spatialization.

        In the units of ``y``: for the tile-type network, the prediction for a slide made
        only of tiles like each one; for the paper's network, the MLP outputs before top-k
        pooling. For a bag of super-tiles each row is a super-tile;
        :func:`he2rna_sklearn.spatial.tile_layout` paints them back on the source tiles.

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
        columns = None if genes is None else gene_columns(self._fitted_genes(), genes)
        scores = self._tile_outputs(bag) * self.y_scale_ + self.y_mean_
        if columns is None:
            return scores
        if isinstance(genes, str):
            return scores[:, columns[0]]
        return gene_set_score(scores[:, columns])

    def transform(self, X):
        """Slide-level transcriptomic embedding: the representation the genes are read
        from.

        For the tile-type network, (n_slides, rank): the readout's factors of the slide's
        tile-type fractions (``init_rank_`` columns). For the paper's network,
        (n_slides, hidden_layer_sizes[-1]): the last hidden layer of the per-tile MLP
        (after its activation), averaged over the slide's real tiles (with no hidden
        layers, the standardised mean tile feature vector). This is this package's
        embedding, not the paper's transfer recipe (which trains a separate MLP on mean
        tile features and reuses its 256-d layer: :class:`MeanFeatureEmbedder`).
        """
        return super().transform(X)

    def score(self, X, y, sample_weight=None):
        """Mean over genes of the Pearson r between predictions and ``y``.

        A gene with an undefined correlation (constant) counts as r = 0.
        """
        if sample_weight is not None:
            raise ValueError("HE2RNARegressor.score does not support sample_weight.")
        check_is_fitted(self, "module_")
        Y, _, _ = check_targets(y, len(X), bags=X)
        pred = self.predict(X)
        return mean_gene_correlation(Y, pred.reshape(len(Y), -1))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
