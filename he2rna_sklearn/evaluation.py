"""The paper's evaluation protocol: per-gene correlations under patient-grouped CV."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, check_cv
from sklearn.utils import Bunch, _safe_indexing

from .metrics import gene_correlations

__all__ = ["aggregate_by_patient", "cross_validate_genes"]


def _metadata_params(model, metadata):
    """The fit parameters that route ``metadata`` (name -> values) to the steps that take it.

    With scikit-learn's metadata routing enabled, the estimator receives the metadata it
    requests (a Pipeline routes it to its steps). Without routing, a Pipeline gets
    ``<step>__<name>`` for each step whose ``fit`` has that parameter, and a plain
    estimator gets ``<name>`` if its ``fit`` has it. Metadata nobody takes is not passed.
    """
    from sklearn import get_config
    from sklearn.pipeline import Pipeline
    from sklearn.utils.metadata_routing import get_routing_for_object
    from sklearn.utils.validation import has_fit_parameter

    metadata = {k: v for k, v in metadata.items() if v is not None}
    if get_config().get("enable_metadata_routing", False):
        consumed = get_routing_for_object(model).consumes("fit", list(metadata))
        return {k: v for k, v in metadata.items() if k in consumed}
    if isinstance(model, Pipeline):
        return {
            f"{name}__{key}": value
            for name, step in model.steps
            if step not in (None, "passthrough")
            for key, value in metadata.items()
            if has_fit_parameter(step, key)
        }
    return {k: v for k, v in metadata.items() if has_fit_parameter(model, k)}


def _fit_predict(estimator, X, Y, groups, train, test, fit_groups):
    model = clone(estimator)
    X_train, X_test = _safe_indexing(X, train), _safe_indexing(X, test)
    params = _metadata_params(model, {"groups": groups[train]}) if fit_groups else {}
    model.fit(X_train, Y[train], **params)
    pred = np.asarray(model.predict(X_test), dtype=np.float64)
    return pred.reshape(len(test), -1)


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

    Returns
    -------
    result : sklearn.utils.Bunch
        ``per_fold`` (tidy DataFrame: gene, fold, r, p, n), ``pooled`` (DataFrame by gene:
        r, p, p_holm, p_bh, n on pooled out-of-fold predictions, plus ``r_mean_folds``),
        ``summary`` (dict: mean r over genes and folds, genes well predicted by Holm and by
        BH) and ``predictions`` (DataFrame, out of fold, same shape as ``Y``).

    Examples
    --------
    >>> from he2rna_sklearn import HE2RNARegressor
    >>> from he2rna_sklearn.evaluation import cross_validate_genes
    >>> res = cross_validate_genes(HE2RNARegressor(), bags, Y, patient_ids)  # doctest: +SKIP
    >>> res.summary  # doctest: +SKIP
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
    if cv is None or isinstance(cv, numbers.Integral):
        cv = GroupKFold(5 if cv is None else int(cv))
    cv = check_cv(cv)
    splits = list(cv.split(np.zeros(len(Y)), Y, groups))
    for train, test in splits:
        shared = set(groups[train]) & set(groups[test])
        if shared:
            raise ValueError(
                f"The CV splitter puts patients in both train and test ({sorted(shared)[:5]}); "
                "use a group-aware splitter such as GroupKFold."
            )
    preds = Parallel(n_jobs=n_jobs, verbose=verbose)(
        delayed(_fit_predict)(estimator, X, Y, groups, train, test, fit_groups)
        for train, test in splits
    )
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
    return Bunch(per_fold=per_fold, pooled=pooled, summary=summary, predictions=predictions)


def aggregate_by_patient(scores, patient_ids, *, how="mean"):
    """Combine slide-level scores into one score per patient.

    A patient with several slides has one label (one tumour, one MSI status), so slide
    probabilities are averaged (or their maximum taken) into a patient score before a
    patient-level ROC AUC.

    Parameters
    ----------
    scores : array-like of shape (n_slides,) or (n_slides, n_outputs)
        E.g. ``predict_proba(X)[:, 1]``.
    patient_ids : array-like of shape (n_slides,)
    how : {"mean", "max", "median"}, default="mean"

    Returns
    -------
    patient_scores : Series or DataFrame indexed by patient id (in order of first
        appearance)

    Examples
    --------
    >>> aggregate_by_patient([0.2, 0.4, 0.9], ["P1", "P1", "P2"])
    patient_id
    P1    0.3
    P2    0.9
    Name: score, dtype: float64
    """
    if how not in ("mean", "max", "median"):
        raise ValueError(f"how must be 'mean', 'max' or 'median', got {how!r}.")
    values = np.asarray(scores, dtype=np.float64)
    patient_ids = np.asarray(patient_ids)
    if len(values) != len(patient_ids):
        raise ValueError(f"Got {len(values)} scores for {len(patient_ids)} patient ids.")
    frame = pd.DataFrame(values.reshape(len(values), -1))
    frame.index = pd.Index(patient_ids, name="patient_id")
    out = frame.groupby(level=0, sort=False).agg(how)
    if values.ndim == 1:
        return out.iloc[:, 0].rename("score")
    return out
