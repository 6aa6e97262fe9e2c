"""The mean of fitted regressors: e.g. the five fold models of a released SEQUOIA model."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["FoldEnsembleRegressor"]


class FoldEnsembleRegressor(RegressorMixin, TransformerMixin, BaseEstimator):
    """Average fitted expression regressors that predict the same genes from the same bags.

    SEQUOIA reports, per cancer type, the mean of the predictions of its five fold models;
    this combines any fitted regressors of this package that way (e.g. the models of a
    cross-validation). ``fit`` trains nothing: it checks that the models are fitted and
    agree (genes, feature dimension).

    Parameters
    ----------
    estimators : sequence of fitted estimators
        Each with ``predict``, ``transform`` and ``gene_names_`` (e.g.
        :class:`~he2rna_sklearn.model.SequoiaRegressor`,
        :class:`~he2rna_sklearn.HE2RNARegressor`). ``clone`` makes unfitted copies, as for
        any estimator parameter: to use the ensemble in ``GridSearchCV`` or a cloned
        pipeline, wrap it in ``sklearn.frozen.FrozenEstimator``.

    Attributes
    ----------
    estimators_ : list
    gene_names_ : ndarray of str
    n_features_in_ : int
    n_outputs_ : int

    Examples
    --------
    >>> from he2rna_sklearn.model import FoldEnsembleRegressor
    >>> ensemble = FoldEnsembleRegressor([model_fold0, model_fold1]).fit()  # doctest: +SKIP
    >>> ensemble.predict(bags)  # the mean of the two models' predictions  # doctest: +SKIP
    """

    def __init__(self, estimators):
        self.estimators = estimators

    def fit(self, X=None, y=None, **fit_params):
        """Check the estimators (fitted, same genes, same feature dimension).

        ``X`` and ``y`` are ignored: the estimators are already fitted.

        Returns
        -------
        self
        """
        estimators = list(self.estimators)
        if not estimators:
            raise ValueError("estimators is empty; give one or more fitted regressors.")
        for i, est in enumerate(estimators):
            try:
                check_is_fitted(est)
            except Exception:
                raise ValueError(
                    f"estimators[{i}] ({type(est).__name__}) is not fitted. "
                    "FoldEnsembleRegressor averages fitted models; under clone() "
                    "(GridSearchCV, cross_validate) wrap the ensemble in "
                    "sklearn.frozen.FrozenEstimator to keep them fitted."
                ) from None
        first = estimators[0]
        names = np.asarray(first.gene_names_, dtype=object)
        for i, est in enumerate(estimators[1:], start=1):
            if list(est.gene_names_) != list(names):
                raise ValueError(
                    f"estimators[{i}] predicts other genes (or another order) than "
                    "estimators[0]; an ensemble averages models of the same genes."
                )
            if est.n_features_in_ != first.n_features_in_:
                raise ValueError(
                    f"estimators[{i}] takes {est.n_features_in_} features per tile but "
                    f"estimators[0] takes {first.n_features_in_}."
                )
        self.estimators_ = estimators
        self.gene_names_ = names
        self.n_features_in_ = first.n_features_in_
        self.n_outputs_ = len(names)
        return self

    def predict(self, X):
        """The mean of the estimators' predictions, (n_slides, n_genes)."""
        check_is_fitted(self, "estimators_")
        return np.mean([np.asarray(est.predict(X)) for est in self.estimators_], axis=0)

    def transform(self, X):
        """The estimators' slide embeddings side by side (each model has its own space),
        (n_slides, sum of their widths)."""
        check_is_fitted(self, "estimators_")
        return np.hstack([np.asarray(est.transform(X)) for est in self.estimators_])

    def get_feature_names_out(self, input_features=None):
        """``fold{i}_{name}`` for each estimator's embedding columns."""
        check_is_fitted(self, "estimators_")
        names = []
        for i, est in enumerate(self.estimators_):
            names += [f"fold{i}_{n}" for n in est.get_feature_names_out()]
        return np.asarray(names, dtype=object)

    def predict_tiles(self, bag, genes=None):
        """The mean of the estimators' per-tile scores of one bag (as SEQUOIA averages its
        folds' spatial maps)."""
        check_is_fitted(self, "estimators_")
        return np.mean([est.predict_tiles(bag, genes) for est in self.estimators_], axis=0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
