"""HE2RNAEmbedder: learn the transcriptomic representation inside each CV fold."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._regressor import HE2RNARegressor

__all__ = ["HE2RNAEmbedder"]


class HE2RNAEmbedder(TransformerMixin, BaseEstimator):
    """A transformer that fits HE2RNA on expression and outputs its slide embedding.

    Use it as the first step of a classification pipeline when expression is available
    for the labelled slides: inside cross-validation, the regressor is then trained on
    each training fold's expression only. Expression travels as metadata
    (``fit(X, y=None, *, expression)``), sliced per fold like any sample-aligned
    parameter. The classification labels ``y`` are never used: a pipeline cannot train
    the regressor on them by mistake, and a missing ``expression`` is an error.

    Parameters
    ----------
    regressor : HE2RNARegressor, optional
        The regressor to clone and fit (default ``HE2RNARegressor()``).
    output : {"embedding", "expression"}, default="embedding"
        What ``transform`` returns: the slide embedding (the regressor's ``transform``:
        the readout's factors of the tile-type fractions, or with the paper's network the
        last hidden layer averaged over tiles) or the predicted expression.

    Attributes
    ----------
    regressor_ : HE2RNARegressor
        The fitted regressor.
    n_features_in_ : int
    feature_spec_ : dict
        The regressor's: the features it was fitted on (encoder, weights, dimension, µm/px,
        tile size); ``transform`` refuses bags of other features (through the regressor).

    Examples
    --------
    With metadata routing, ``expression`` reaches the embedder inside every fold::

        import sklearn
        sklearn.set_config(enable_metadata_routing=True)
        pipe = make_pipeline(HE2RNAEmbedder(HE2RNARegressor()), StandardScaler(),
                             LogisticRegression())
        cross_validate(pipe, bags, msi, cv=StratifiedGroupKFold(5),
                       params={"expression": expression, "groups": patients})

    Without routing, pass it as a step parameter:
    ``pipe.fit(bags, msi, he2rnaembedder__expression=expression)``.
    """

    __metadata_request__fit = {"expression": True, "groups": True}

    _parameter_constraints = {
        "regressor": [HasMethods(["fit", "transform", "predict"]), None],
        "output": [StrOptions({"embedding", "expression"})],
    }

    def __init__(self, regressor=None, output="embedding"):
        self.regressor = regressor
        self.output = output

    def fit(self, X, y=None, *, expression=None, groups=None):
        """Fit the regressor on ``expression``; ``y`` is ignored.

        Parameters
        ----------
        X : sequence of bags
        y : ignored
            The labels of the downstream classifier; never used here.
        expression : array-like or DataFrame of shape (n_slides, n_genes)
            The slides' expression, aligned with ``X``.
        groups : array-like of shape (n_slides,), optional
            Patient ids for the regressor's early-stopping split.

        Returns
        -------
        self
        """
        self._validate_params()
        if expression is None:
            raise ValueError(
                "HE2RNAEmbedder.fit needs expression=(n_slides, n_genes): it learns from "
                "expression, never from y (the classification labels). In a pipeline pass "
                "he2rnaembedder__expression=..., or enable metadata routing and pass "
                "expression=... to fit / cross_validate(params=...)."
            )
        if len(expression) != len(X):
            raise ValueError(f"expression has {len(expression)} rows but X holds {len(X)} bags.")
        base = HE2RNARegressor() if self.regressor is None else self.regressor
        self.regressor_ = clone(base).fit(X, expression, groups=groups)
        self.n_features_in_ = self.regressor_.n_features_in_
        self.feature_spec_ = self.regressor_.feature_spec_
        return self

    def transform(self, X):
        """The slide embedding (or predicted expression) of each bag."""
        check_is_fitted(self, "regressor_")
        if self.output == "expression":
            return np.asarray(self.regressor_.predict(X)).reshape(len(X), -1)
        return self.regressor_.transform(X)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "regressor_")
        if self.output == "expression":
            return np.asarray(self.regressor_.gene_names_, dtype=object)
        return self.regressor_.get_feature_names_out()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = False
        return tags
