"""The cheap baselines every HE2RNA model is compared with, and the side-by-side comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._genes import cross_validate_genes, group_cv

__all__ = ["compare_to_baseline", "describe_choices", "ridge_baseline", "tuned_linear_baseline"]


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


def tuned_linear_baseline(*, families=("ridge", "pca", "rrr"), alphas=None, ranks=None):
    """The strongest cheap baseline: a tuned linear model of mean-pooled tile features.

    ``make_pipeline(BagPooling(), StandardScaler(), TunedLinearRegressor())``: ridge,
    PCA-r + ridge or reduced-rank ridge, the family, penalty and rank chosen by an inner
    cross-validation by patient on the training slides only (pass ``groups``; the
    pipeline routes them to the regressor, see :func:`fit_params_for`). Its
    ``description_`` names the choice. It costs milliseconds, and every HE2RNA report
    sits beside it (:func:`compare_to_baseline`, ``he2rna evaluate``/``fit``, the demo).

    Parameters
    ----------
    families, alphas, ranks
        Passed to :class:`~he2rna_sklearn.model.TunedLinearRegressor` (None keeps its
        defaults).

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline

    Examples
    --------
    >>> from he2rna_sklearn.evaluation import tuned_linear_baseline
    >>> [name for name, _ in tuned_linear_baseline().steps]
    ['bagpooling', 'standardscaler', 'tunedlinearregressor']
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..bags import BagPooling
    from ..model import TunedLinearRegressor

    params = {"families": tuple(families)}
    if alphas is not None:
        params["alphas"] = alphas
    if ranks is not None:
        params["ranks"] = ranks
    return make_pipeline(BagPooling(), StandardScaler(), TunedLinearRegressor(**params))


def _model_name(estimator):
    last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return type(last).__name__


def _covering_splits(cv, n_slides, groups):
    """The folds of ``cv`` as a list, after checking that every slide is predicted once
    (the paired comparison needs out-of-fold predictions of every slide), before any fit."""
    from sklearn.model_selection import check_cv

    splits = list(check_cv(group_cv(cv)).split(np.zeros(n_slides), None, groups))
    counts = np.zeros(n_slides, dtype=int)
    for _, test in splits:
        counts[test] += 1
    if (counts != 1).any():
        raise ValueError(
            f"compare_to_baseline needs every slide in exactly one test fold, but cv "
            f"({cv!r}) leaves {(counts == 0).sum()} slides out and tests "
            f"{(counts > 1).sum()} more than once; use GroupKFold (the default)."
        )
    return splits


def describe_choices(descriptions):
    """Per-fold choices in one line, e.g. ``"reduced-rank ridge (rank 4, alpha 100) in 3
    folds; ridge (alpha 1000) in 2"``, or None when the model chose nothing."""
    seen = [d for d in descriptions if d]
    if not seen:
        return None
    counts = pd.Series(seen).value_counts(sort=True)
    parts = [f"{d} in {n} fold{'s' if n > 1 else ''}" for d, n in counts.items()]
    return "; ".join(parts)


def compare_to_baseline(
    estimator, X, Y, groups, *, baseline=None, cv=None, n_resamples=1000, **kwargs
):
    """Cross-validate a model and the tuned linear baseline on the same folds, side by side.

    Parameters
    ----------
    estimator : estimator
        E.g. ``HE2RNARegressor()`` or a Pipeline ending in one.
    X, Y, groups
        As for :func:`cross_validate_genes`.
    baseline : estimator, optional
        Default :func:`tuned_linear_baseline` (ridge, PCA-r + ridge or reduced-rank ridge
        on mean-pooled features, chosen per fold by inner CV on the training slides).
    cv : int or splitter, default=GroupKFold(5)
        The same folds are used for both models.
    n_resamples : int, default=1000
        Bootstrap draws of patients for the intervals (:func:`compare_genes`).
    **kwargs
        Passed to :func:`cross_validate_genes` (``alpha``, ``n_jobs``, ``method``...).

    Returns
    -------
    result : sklearn.utils.Bunch
        ``model`` and ``baseline`` (the two :func:`cross_validate_genes` results),
        ``comparison`` (:func:`compare_genes` on the pooled out-of-fold predictions),
        ``table`` (DataFrame: the summary figures, one column per model, the difference and
        its 95% interval), ``baseline_choice`` (what the baseline chose in each fold, in
        words) and ``verdict`` (a sentence: better, worse, or not distinguishable from the
        baseline on the genes significant after Holm's correction, the paper's headline
        figure, with the interval; only an interval that excludes 0 makes a winner).

    Examples
    --------
    >>> from he2rna_sklearn import HE2RNARegressor
    >>> from he2rna_sklearn.evaluation import compare_to_baseline
    >>> res = compare_to_baseline(HE2RNARegressor(), bags, Y, patients)  # doctest: +SKIP
    >>> print(res.table)  # doctest: +SKIP
    >>> print(res.verdict)  # doctest: +SKIP
    """
    from ._compare import compare_genes

    if kwargs.get("method", "pearson") != "pearson":
        raise ValueError(
            f"compare_to_baseline compares Pearson figures (its intervals are Pearson's); "
            f"method={kwargs['method']!r} is not supported here: run cross_validate_genes "
            "on each model for other correlations."
        )
    base_name = "tuned linear baseline" if baseline is None else _model_name(baseline)
    baseline = tuned_linear_baseline() if baseline is None else baseline
    cv = _covering_splits(cv, len(Y), groups)
    model_res = cross_validate_genes(estimator, X, Y, groups, cv=cv, **kwargs)
    base_res = cross_validate_genes(baseline, X, Y, groups, cv=cv, **kwargs)
    comparison = compare_genes(
        np.asarray(Y, dtype=np.float64),
        model_res.predictions.to_numpy(),
        base_res.predictions.to_numpy(),
        groups,
        alpha=kwargs.get("alpha", 0.05),
        n_resamples=n_resamples,
    )
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
    table["95% CI low"] = np.nan
    table["95% CI high"] = np.nan
    table.loc["genes significant (Holm)", ["95% CI low", "95% CI high"]] = (
        comparison.holm_ci_low,
        comparison.holm_ci_high,
    )
    table.loc["mean r (pooled out of fold)", ["95% CI low", "95% CI high"]] = (
        comparison.r_ci_low,
        comparison.r_ci_high,
    )
    choice = describe_choices(base_res.descriptions)
    holm = table.loc["genes significant (Holm)"]
    counts = f"{int(holm[name])} vs {int(holm[base_name])} genes significant after Holm"
    if comparison.verdict.startswith("better"):
        verdict = f"{name} beats the {base_name}: {counts}; {comparison.verdict}."
    else:
        verdict = (
            f"{name} does NOT beat the {base_name}: {counts}; {comparison.verdict}. The "
            "deep model has not earned its keep on this cohort."
        )
    if choice:
        verdict += f" The baseline chose {choice}."
    return Bunch(
        model=model_res,
        baseline=base_res,
        comparison=comparison,
        table=table,
        baseline_choice=choice,
        verdict=verdict,
    )
