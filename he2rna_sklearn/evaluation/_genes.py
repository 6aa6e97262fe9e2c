"""The paper's evaluation protocol: per-gene correlations under patient-grouped CV."""

from __future__ import annotations

import numbers
import os
import warnings

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, check_cv
from sklearn.utils import Bunch, _safe_indexing

from .._parallel import exit_with_parent
from ..metrics import gene_correlations
from ._groups import _check_by, gene_correlations_by_group
from ._routing import fit_params_for

__all__ = ["cross_validate_genes", "group_cv"]


def group_cv(cv):
    """``cv`` as a splitter: None is scikit-learn's ``GroupKFold()`` (5 folds), an int n
    is ``GroupKFold(n)``, anything else is returned as it is."""
    if cv is None:
        return GroupKFold()
    if isinstance(cv, numbers.Integral):
        return GroupKFold(int(cv))
    return cv


def _fit_predict(estimator, X, Y, groups, train, test, fit_groups, parent_pid=None):
    exit_with_parent(parent_pid)  # a worker does not train on after its caller was killed
    model = clone(estimator)
    X_train, X_test = _safe_indexing(X, train), _safe_indexing(X, test)
    params = fit_params_for(model, groups=groups[train]) if fit_groups else {}
    model.fit(X_train, Y[train], **params)
    pred = np.asarray(model.predict(X_test), dtype=np.float64)
    last = model.steps[-1][1] if hasattr(model, "steps") else model
    return pred.reshape(len(test), -1), getattr(last, "description_", None)


def cross_validate_genes(
    estimator,
    X,
    Y,
    groups,
    *,
    cv=None,
    method="pearson",
    alpha=0.05,
    n_jobs=None,
    fit_groups=True,
    verbose=0,
    by=None,
):
    """Cross-validate a gene-expression model by patient and report every gene.

    The HE2RNA protocol: folds split by patient, never by slide; per-gene correlation on
    each test fold; and the correlation on all out-of-fold predictions pooled, with
    one-sided p-values and Holm-Bonferroni and Benjamini-Hochberg corrections.

    Parameters
    ----------
    estimator : estimator
        E.g. ``HE2RNARegressor`` or a Pipeline ending in one.
    X : sequence of bags
    Y : array-like or DataFrame of shape (n_slides, n_genes)
    groups : array-like of shape (n_slides,)
        Patient ids.
    cv : int or splitter, default=GroupKFold(5)
        An int n means ``GroupKFold(n)``. A splitter that puts one patient in both train
        and test is refused.
    method : {"pearson", "spearman"}, default="pearson"
    alpha : float, default=0.05
        Significance level of the summary counts.
    n_jobs : int, optional
        Folds fitted in parallel with joblib (any backend, e.g. Dask via
        ``joblib.parallel_config(backend="dask")``).
    fit_groups : bool, default=True
        Pass the training patients' ``groups`` to the estimator (for the early-stopping
        split of ``HE2RNARegressor``), the scikit-learn way: under metadata routing to
        whatever requests it, otherwise to each step whose ``fit`` takes ``groups``.
    verbose : int, default=0
        joblib verbosity.
    by : array-like of shape (n_slides,), optional
        A group label per slide, e.g. its TCGA project (cancer type), for per-group reports
        as in the paper's pan-cancer tables (:func:`gene_correlations_by_group`). Apply the
        paper's merges of projects first with :func:`merge_projects`. The folds are
        unchanged: each group is evaluated on the out-of-fold predictions of its own
        slides. A pandas Series ordered differently from ``Y``'s rows is refused; pass
        ``by.loc[Y.index]``.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``per_fold`` (tidy DataFrame: gene, fold, r, p, n), ``pooled`` (DataFrame by gene:
        r, p, p_holm, p_bh, n on pooled out-of-fold predictions, plus ``r_mean_folds``),
        ``summary`` (dict: mean r over genes and folds, genes well predicted by Holm and by
        BH), ``predictions`` (DataFrame, out of fold, same shape as ``Y``) and
        ``descriptions`` (per fold, the fitted model's ``description_`` where it has one,
        e.g. the family a :class:`~he2rna_sklearn.model.TunedLinearRegressor` chose, else
        None). With ``by``,
        also ``per_group`` (tidy DataFrame: group, gene, r, p, p_holm, p_bh, n on the
        group's pooled out-of-fold predictions, with corrections over genes within the
        group, and ``r_mean_folds``, the mean over folds of the r on the group's test
        slides of each fold), ``group_summary`` (DataFrame by group: n_slides,
        n_patients, mean_r_pooled, mean_r_folds, well_predicted_holm,
        well_predicted_bh), and in ``summary`` the means over groups of the groups'
        ``mean_r_pooled`` and ``mean_r_folds`` (``mean_r_by_group_pooled``,
        ``mean_r_by_group_folds``), the paper's pan-cancer figure. A group or fold part
        with fewer than 3 slides has no r (NaN), with a warning.

    Examples
    --------
    >>> from he2rna_sklearn import HE2RNARegressor
    >>> from he2rna_sklearn.evaluation import cross_validate_genes
    >>> res = cross_validate_genes(HE2RNARegressor(), bags, Y, patient_ids)  # doctest: +SKIP
    >>> res.summary  # doctest: +SKIP

    Per cancer type, with the paper's project merges:

    >>> res = cross_validate_genes(HE2RNARegressor(), bags, Y, patient_ids,
    ...                            by=merge_projects(projects))  # doctest: +SKIP
    >>> res.group_summary  # doctest: +SKIP
    """
    genes = [str(c) for c in Y.columns] if hasattr(Y, "columns") else None
    index = Y.index if hasattr(Y, "index") else None
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if genes is None:
        genes = [f"gene_{j}" for j in range(Y.shape[1])]
    groups = np.asarray(groups)
    if len(groups) != len(Y) or len(X) != len(Y):
        raise ValueError(
            f"X, Y and groups must have the same length ({len(X)}, {len(Y)}, {len(groups)})."
        )
    if by is not None:
        by = _check_by(by, Y, index)
    cv = check_cv(group_cv(cv))
    splits = list(cv.split(np.zeros(len(Y)), Y, groups))
    for train, test in splits:
        shared = set(groups[train]) & set(groups[test])
        if shared:
            raise ValueError(
                f"The CV splitter puts patients in both train and test ({sorted(shared)[:5]}); "
                "use a group-aware splitter such as GroupKFold."
            )
    fitted = Parallel(n_jobs=n_jobs, verbose=verbose)(
        delayed(_fit_predict)(
            estimator, X, Y, groups, train, test, fit_groups, parent_pid=os.getpid()
        )
        for train, test in splits
    )
    preds = [pred for pred, _ in fitted]
    oof = np.full_like(Y, np.nan)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # constant genes in a small fold
        for fold, ((_, test), pred) in enumerate(zip(splits, preds)):
            oof[test] = pred
            table = gene_correlations(Y[test], pred, method=method, genes=genes)
            rows.append(table[["r", "p", "n"]].assign(fold=fold).reset_index())
    per_fold = pd.concat(rows, ignore_index=True)[["gene", "fold", "r", "p", "n"]]
    pooled = gene_correlations(Y, oof, method=method, genes=genes)
    pooled["r_mean_folds"] = per_fold.groupby("gene", sort=False)["r"].mean().loc[genes].to_numpy()
    summary = {
        "n_genes": len(genes),
        "n_folds": len(splits),
        "mean_r_folds": float(per_fold["r"].mean()),
        "mean_r_pooled": float(pooled["r"].mean()),
        "well_predicted_holm": int((pooled["p_holm"] < alpha).sum()),
        "well_predicted_bh": int((pooled["p_bh"] < alpha).sum()),
        "alpha": alpha,
    }
    predictions = pd.DataFrame(oof, columns=genes, index=index)
    result = Bunch(
        per_fold=per_fold,
        pooled=pooled,
        summary=summary,
        predictions=predictions,
        descriptions=[description for _, description in fitted],
    )
    if by is not None:
        folds = np.empty(len(Y), dtype=np.int64)
        for fold, (_, test) in enumerate(splits):
            folds[test] = fold
        report = gene_correlations_by_group(
            pd.DataFrame(Y, columns=genes, index=index),
            predictions,
            by,
            patient_ids=groups,
            folds=folds,
            method=method,
            alpha=alpha,
        )
        result.per_group, result.group_summary = report.per_group, report.group_summary
        summary["n_groups"] = len(report.group_summary)
        summary["mean_r_by_group_pooled"] = report.mean_r_by_group_pooled
        summary["mean_r_by_group_folds"] = report.mean_r_by_group_folds
    return result
