"""The ridge baseline every HE2RNA model is compared with, and the side-by-side comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._genes import cross_validate_genes, group_cv

__all__ = ["compare_to_baseline", "ridge_baseline"]


def ridge_baseline(alphas=None):
    """The slide-level baseline every HE2RNA model is compared with.

    ``make_pipeline(BagPooling(), StandardScaler(), RidgeCV(alphas))``: a ridge regression
    on the mean of each slide's tile features, its penalty chosen by efficient
    leave-one-out cross-validation. A linear tile scorer with mean pooling is exactly such
    a model, so it sits inside HE2RNA's family.

    Parameters
    ----------
    alphas : array-like, optional
        Penalties tried; default ``numpy.logspace(-2, 4, 13)``.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline

    Examples
    --------
    >>> from he2rna_sklearn.evaluation import ridge_baseline
    >>> [name for name, _ in ridge_baseline().steps]
    ['bagpooling', 'standardscaler', 'ridgecv']
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..bags import BagPooling

    alphas = np.logspace(-2, 4, 13) if alphas is None else alphas
    return make_pipeline(BagPooling(), StandardScaler(), RidgeCV(alphas=alphas))


def _model_name(estimator):
    last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return type(last).__name__


def compare_to_baseline(estimator, X, Y, groups, *, baseline=None, cv=None, **kwargs):
    """Cross-validate a model and the ridge baseline on the same folds, side by side.

    Parameters
    ----------
    estimator : estimator
        E.g. ``HE2RNARegressor()`` or a Pipeline ending in one.
    X, Y, groups
        As for :func:`cross_validate_genes`.
    baseline : estimator, optional
        Default :func:`ridge_baseline`.
    cv : int or splitter, default=GroupKFold(5)
        The same folds are used for both models.
    **kwargs
        Passed to :func:`cross_validate_genes` (``alpha``, ``n_jobs``, ``method``...).

    Returns
    -------
    result : sklearn.utils.Bunch
        ``model`` and ``baseline`` (the two :func:`cross_validate_genes` results),
        ``table`` (DataFrame: the summary figures, one column per model, plus the
        difference) and ``verdict`` (a sentence saying whether the model beats the
        baseline on the genes found significant after Holm's correction, the paper's
        headline figure, and by how much on the mean r).

    Examples
    --------
    >>> from he2rna_sklearn import HE2RNARegressor
    >>> from he2rna_sklearn.evaluation import compare_to_baseline
    >>> res = compare_to_baseline(HE2RNARegressor(), bags, Y, patients)  # doctest: +SKIP
    >>> print(res.table)  # doctest: +SKIP
    >>> print(res.verdict)  # doctest: +SKIP
    """
    base_name = "ridge baseline" if baseline is None else _model_name(baseline)
    baseline = ridge_baseline() if baseline is None else baseline
    cv = group_cv(cv)
    model_res = cross_validate_genes(estimator, X, Y, groups, cv=cv, **kwargs)
    base_res = cross_validate_genes(baseline, X, Y, groups, cv=cv, **kwargs)
    rows = {
        "mean r (per test fold)": "mean_r_folds",
        "mean r (pooled out of fold)": "mean_r_pooled",
        "genes significant (Holm)": "well_predicted_holm",
        "genes significant (BH)": "well_predicted_bh",
    }
    name = _model_name(estimator)
    table = pd.DataFrame(
        {
            name: [model_res.summary[k] for k in rows.values()],
            base_name: [base_res.summary[k] for k in rows.values()],
        },
        index=pd.Index(list(rows), name="metric"),
    )
    table["difference"] = table[name] - table[base_name]
    holm = table.loc["genes significant (Holm)"]
    d_r = table.loc["mean r (per test fold)", "difference"]
    if holm[name] > holm[base_name]:
        verdict = (
            f"{name} beats the {base_name}: {int(holm[name])} vs {int(holm[base_name])} genes "
            f"significant after Holm's correction (mean r {d_r:+.3f})."
        )
    else:
        verdict = (
            f"{name} does NOT beat the {base_name}: {int(holm[name])} vs "
            f"{int(holm[base_name])} genes significant after Holm's correction (mean r "
            f"{d_r:+.3f}). The deep model has not earned its keep on this cohort."
        )
    return Bunch(model=model_res, baseline=base_res, table=table, verdict=verdict)
