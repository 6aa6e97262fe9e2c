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

from ._parallel import exit_with_parent
from .metrics import gene_correlations

__all__ = [
    "PAPER_PROJECT_MERGES",
    "aggregate_by_patient",
    "compare_auc",
    "compare_to_baseline",
    "cross_validate_genes",
    "gene_correlations_by_group",
    "merge_projects",
    "ridge_baseline",
]

#: The HE2RNA paper's merges of TCGA projects for its per-project reports: lung
#: adenocarcinoma and squamous cell carcinoma, the three kidney projects (clear cell,
#: papillary, chromophobe), and the two uterine projects (endometrial carcinoma and
#: carcinosarcoma). Keys are TCGA project codes without the ``TCGA-`` prefix; apply it with
#: :func:`merge_projects`.
PAPER_PROJECT_MERGES = {
    "LUAD": "LUAD+LUSC",
    "LUSC": "LUAD+LUSC",
    "KIRC": "KIRC+KIRP+KICH",
    "KIRP": "KIRC+KIRP+KICH",
    "KICH": "KIRC+KIRP+KICH",
    "UCEC": "UCEC+UCS",
    "UCS": "UCEC+UCS",
}


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


def _fit_predict(estimator, X, Y, groups, train, test, fit_groups, parent_pid=None):
    exit_with_parent(parent_pid)  # a worker does not train on after its caller was killed
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
        BH) and ``predictions`` (DataFrame, out of fold, same shape as ``Y``). With ``by``,
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
        delayed(_fit_predict)(
            estimator, X, Y, groups, train, test, fit_groups, parent_pid=os.getpid()
        )
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
    result = Bunch(per_fold=per_fold, pooled=pooled, summary=summary, predictions=predictions)
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


def _check_by(by, Y, index, name="by"):
    """One label per slide, as an array of str; refuses a Series ordered unlike Y."""
    if isinstance(by, pd.Series) and index is not None and not by.index.equals(index):
        if len(by.index) == len(index) and set(by.index) == set(index):
            raise ValueError(
                f"{name} is a Series whose index holds Y's rows in another order; pass "
                f"{name}.loc[Y.index] ({name} is read by position)."
            )
    values = np.asarray(by, dtype=object)
    if values.ndim != 1 or len(values) != len(Y):
        raise ValueError(
            f"{name} must hold one label per slide ({len(Y)}), got shape {values.shape}."
        )
    missing = pd.isna(values)
    if missing.any():
        raise ValueError(
            f"{name} has missing labels at rows {np.flatnonzero(missing)[:10].tolist()}; give "
            "every slide a group (e.g. its TCGA project) or drop those slides."
        )
    return np.array([str(v) for v in values], dtype=object)


def _group_correlations(y_true, y_pred, method, genes):
    """gene_correlations, or a NaN table when fewer than 3 slides make no r."""
    if len(y_true) >= 3:
        return gene_correlations(y_true, y_pred, method=method, genes=genes)
    nan = np.full(len(genes), np.nan)
    return pd.DataFrame(
        {"r": nan, "p": nan, "p_holm": nan, "p_bh": nan, "n": len(y_true)},
        index=pd.Index(genes, name="gene"),
    )


def gene_correlations_by_group(
    y_true, y_pred, by, *, patient_ids=None, folds=None, method="pearson", alpha=0.05
):
    """Per-gene correlations within each group (e.g. TCGA project), and a summary per group.

    The paper's pan-cancer tables: one model predicts all projects, and every project is
    evaluated on its own slides. :func:`cross_validate_genes` calls this with ``by=``; call
    it directly on out-of-fold predictions made another way (e.g. a loop over folds that
    warm-starts each fold's all-tiles model from its super-tiles model).

    Parameters
    ----------
    y_true, y_pred : array-like or DataFrame of shape (n_slides, n_genes)
        Measured and (out-of-fold) predicted expression.
    by : array-like of shape (n_slides,)
        The group of each slide, e.g. ``merge_projects(projects)``.
    patient_ids : array-like of shape (n_slides,), optional
        Adds the number of patients per group.
    folds : array-like of shape (n_slides,), optional
        The test fold of each slide. Adds ``r_mean_folds``: per gene, the mean over folds
        of the r on the group's test slides of that fold (per-fold figures do not suffer
        from the offsets between folds' predictions that lower pooled r).
    method : {"pearson", "spearman"}, default="pearson"
    alpha : float, default=0.05
        Significance level of the counts of well-predicted genes.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``per_group`` (tidy DataFrame: group, gene, r, p, p_holm, p_bh, n and, with
        ``folds``, r_mean_folds; Holm and BH correct over the genes of each group),
        ``group_summary`` (DataFrame by group: n_slides, n_patients with ``patient_ids``,
        mean_r_pooled, mean_r_folds with ``folds``, well_predicted_holm and
        well_predicted_bh), and ``mean_r_by_group_pooled`` (and ``mean_r_by_group_folds``):
        the mean over groups of the groups' mean r, the paper's pan-cancer figure. A
        group or fold part with fewer than 3 slides has no r (NaN), with a warning.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=(40, 2))
    >>> pred = y + rng.normal(size=(40, 2))
    >>> res = gene_correlations_by_group(y, pred, ["COAD"] * 20 + ["READ"] * 20)
    >>> res.group_summary.index.tolist(), res.per_group.shape
    (['COAD', 'READ'], (4, 7))
    """
    genes = [str(c) for c in y_true.columns] if hasattr(y_true, "columns") else None
    index = y_true.index if hasattr(y_true, "index") else None
    Y = np.asarray(y_true, dtype=np.float64)
    P = np.asarray(y_pred, dtype=np.float64)
    Y, P = (Y[:, None] if Y.ndim == 1 else Y), (P[:, None] if P.ndim == 1 else P)
    if Y.shape != P.shape:
        raise ValueError(f"y_true has shape {Y.shape} but y_pred has shape {P.shape}.")
    if genes is None:
        genes = [f"gene_{j}" for j in range(Y.shape[1])]
    by = _check_by(by, Y, index)
    if patient_ids is not None:
        patient_ids = np.asarray(patient_ids)
        if patient_ids.shape != (len(Y),):
            raise ValueError(
                f"patient_ids must hold one id per slide ({len(Y)}), got {patient_ids.shape}."
            )
    if folds is not None:
        folds = np.asarray(folds)
        if folds.shape != (len(Y),):
            raise ValueError(f"folds must hold one fold per slide ({len(Y)}), got {folds.shape}.")
    labels = sorted(set(by))
    small = [g for g in labels if (by == g).sum() < 3]
    if small:
        warnings.warn(
            f"Groups with fewer than 3 slides have no correlation (NaN): {small[:10]}.",
            UserWarning,
            stacklevel=2,
        )
    tables, rows = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # constant genes in a small group
        for label in labels:
            members = by == label
            table = _group_correlations(Y[members], P[members], method, genes)
            row = {"group": label, "n_slides": int(members.sum())}
            if patient_ids is not None:
                row["n_patients"] = int(len(np.unique(patient_ids[members])))
            row["mean_r_pooled"] = float(table["r"].mean())
            if folds is not None:
                fold_r = [
                    _group_correlations(Y[part], P[part], method, genes)["r"]
                    for part in (members & (folds == f) for f in np.unique(folds))
                ]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN genes
                    table["r_mean_folds"] = np.nanmean(np.column_stack(fold_r), axis=1)
                row["mean_r_folds"] = float(table["r_mean_folds"].mean())
            row["well_predicted_holm"] = int((table["p_holm"] < alpha).sum())
            row["well_predicted_bh"] = int((table["p_bh"] < alpha).sum())
            tables.append(table.reset_index().assign(group=label))
            rows.append(row)
    columns = ["group", "gene", "r", "p", "p_holm", "p_bh", "n"]
    columns += ["r_mean_folds"] if folds is not None else []
    group_summary = pd.DataFrame(rows).set_index("group")
    result = Bunch(
        per_group=pd.concat(tables, ignore_index=True)[columns],
        group_summary=group_summary,
        mean_r_by_group_pooled=float(group_summary["mean_r_pooled"].mean()),
    )
    if folds is not None:
        result.mean_r_by_group_folds = float(group_summary["mean_r_folds"].mean())
    return result


def merge_projects(projects, merges=None):
    """Map TCGA project codes to the cancer types of the paper's per-project reports.

    The paper reported lung adenocarcinoma and squamous cell carcinoma together
    (``LUAD+LUSC``), likewise the three kidney projects (``KIRC+KIRP+KICH``) and the two
    uterine ones (``UCEC+UCS``); every other project stands alone. Codes may carry the
    ``TCGA-`` prefix, which the merged name keeps (``TCGA-LUAD`` -> ``TCGA-LUAD+LUSC``).

    Parameters
    ----------
    projects : array-like of shape (n_slides,)
        One TCGA project code per slide, e.g. ``"LUAD"`` or ``"TCGA-LUAD"``.
    merges : dict, optional
        Code (without prefix) -> merged name; default :data:`PAPER_PROJECT_MERGES`.

    Returns
    -------
    merged : ndarray of str, or a Series with the same index if ``projects`` is one

    Examples
    --------
    >>> merge_projects(["TCGA-LUSC", "KICH", "COAD", "UCS"]).tolist()
    ['TCGA-LUAD+LUSC', 'KIRC+KIRP+KICH', 'COAD', 'UCEC+UCS']
    """
    merges = PAPER_PROJECT_MERGES if merges is None else merges
    values = np.asarray(projects, dtype=object)
    if values.ndim != 1:
        raise ValueError(f"projects must be 1-D (one code per slide), got shape {values.shape}.")
    missing = pd.isna(values)
    if missing.any():
        raise ValueError(
            f"projects has missing codes at rows {np.flatnonzero(missing)[:10].tolist()}."
        )
    out = []
    for value in values:
        code = str(value)
        prefix = code[:5] if code.upper().startswith("TCGA-") else ""
        merged = merges.get(code[len(prefix) :].upper())
        out.append(code if merged is None else prefix + merged)
    out = np.array(out, dtype=object)
    if isinstance(projects, pd.Series):
        return pd.Series(out, index=projects.index, name=projects.name)
    return out


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


def _rank_auc(y, scores):
    """ROC AUC of 0/1 labels ``y`` by the Mann-Whitney rank sum (ties: average ranks); NaN
    with one class. Equal to ``roc_auc_score``, without its input checks (it is called
    thousands of times per bootstrap)."""
    from scipy.stats import rankdata

    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.nan
    ranks = rankdata(scores, axis=0)  # 2-D scores: one AUC per column
    return (ranks[y == 1].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def compare_auc(
    y_true,
    scores,
    baseline_scores,
    *,
    groups=None,
    pos_label=None,
    n_resamples=2000,
    confidence_level=0.95,
    random_state=None,
):
    """ROC AUC of two sets of scores on the same slides, with a paired bootstrap interval
    of their difference.

    With a few dozen positive patients (e.g. MSI-high tumours in a TCGA project), the AUCs
    of two representations of the same slides differ by several hundredths by chance. This
    says whether a difference is larger than that: each bootstrap draw resamples patients
    (with ``groups``; else slides), with their labels and both scores, and the percentile
    interval of ``AUC(scores) - AUC(baseline_scores)`` is returned. The draws are
    stratified: positive patients (any positive slide) and the others are resampled
    separately, so that every draw keeps the cohort's count of each and has an AUC.

    Parameters
    ----------
    y_true : array-like of shape (n_slides,)
        Binary labels (e.g. 1 for MSI-H).
    scores, baseline_scores : array-like of shape (n_slides,) or (n_slides, n_repeats)
        Out-of-fold scores of the model and of the baseline (e.g. a logistic regression on
        the HE2RNA embedding, and on mean-pooled tile features), for the same slides. With
        several columns (repeated cross-validation, or cohorts generated with several
        seeds from the same patients), each AUC is the mean over columns, and each draw
        of patients applies to every column.
    groups : array-like of shape (n_slides,), optional
        Patient ids: patients are drawn, with all their slides.
    pos_label : label, optional
        The positive class (e.g. ``"MSI-H"``); needed unless the labels are 0/1 or
        False/True.
    n_resamples : int, default=2000
    confidence_level : float, default=0.95
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    result : sklearn.utils.Bunch
        ``auc``, ``auc_baseline``, ``difference``, ``ci_low``, ``ci_high`` (the interval of
        the difference), ``n_positive``, ``n_negative`` and ``verdict`` (a sentence: better,
        worse, or not distinguishable at this confidence level).

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn.evaluation import compare_auc
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 40)
    >>> res = compare_auc(y, y + rng.normal(size=80), y + rng.normal(scale=3, size=80),
    ...                   random_state=0)
    >>> res.auc > res.auc_baseline, res.ci_low > 0
    (True, True)
    """
    from scipy.stats import bootstrap
    from sklearn.utils import check_random_state

    y = np.asarray(y_true).ravel()
    a, b = (np.asarray(v, dtype=np.float64) for v in (scores, baseline_scores))
    a, b = (v.reshape(len(v), -1) if v.ndim else v for v in (a, b))
    if not len(y) == len(a) == len(b) or a.ndim != 2 or b.ndim != 2:
        raise ValueError(
            f"y_true, scores and baseline_scores must have the same length "
            f"({len(y)}, {len(a) if a.ndim else a}, {len(b) if b.ndim else b})."
        )
    labels = pd.unique(y)
    if len(labels) != 2 or pd.isna(labels).any():
        raise ValueError(
            f"compare_auc needs exactly two classes in y_true and no missing label, got "
            f"{sorted(map(str, labels))[:5]}."
        )
    if pos_label is None:
        if set(labels.tolist()) not in ({0, 1}, {False, True}):
            raise ValueError(
                f"y_true has labels {sorted(map(str, labels))}: say which is positive with "
                "pos_label=..."
            )
        pos_label = 1
    elif pos_label not in labels.tolist():
        raise ValueError(f"pos_label={pos_label!r} is not a label of y_true {list(labels)}.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores and baseline_scores must be finite (no NaN).")
    y = (y == pos_label).astype(int)
    if groups is None:
        members = [np.array([i]) for i in range(len(y))]
    else:
        groups = np.asarray(groups)
        if len(groups) != len(y):
            raise ValueError(f"Got {len(groups)} groups for {len(y)} slides.")
        members = [np.flatnonzero(groups == g) for g in pd.unique(groups)]

    positive = np.array([y[m].any() for m in members])
    if positive.all():
        raise ValueError(
            "Every patient has a positive slide, so a draw of patients can hold no negative "
            "slide; compare_auc needs patients whose slides are all negative."
        )

    def difference(pos_units, neg_units):
        index = np.concatenate([members[u] for u in (*pos_units, *neg_units)])
        return np.mean(_rank_auc(y[index], a[index])) - np.mean(_rank_auc(y[index], b[index]))

    seed = check_random_state(random_state).randint(2**31 - 1)
    ci = bootstrap(  # two samples resampled independently: a stratified bootstrap
        (np.flatnonzero(positive), np.flatnonzero(~positive)),
        difference,
        vectorized=False,
        n_resamples=int(n_resamples),
        confidence_level=confidence_level,
        method="percentile",
        random_state=seed,
    ).confidence_interval
    auc, auc_base = (np.mean(_rank_auc(y, v)) for v in (a, b))
    level = f"{100 * confidence_level:g}%"
    if ci.low > 0:
        verdict = f"better than the baseline ({level} interval of the difference above 0)"
    elif ci.high < 0:
        verdict = f"worse than the baseline ({level} interval of the difference below 0)"
    else:
        verdict = (
            f"not distinguishable from the baseline ({level} interval of the difference "
            f"{ci.low:+.3f} to {ci.high:+.3f} contains 0)"
        )
    return Bunch(
        auc=float(auc),
        auc_baseline=float(auc_base),
        difference=float(auc - auc_base),
        ci_low=float(ci.low),
        ci_high=float(ci.high),
        n_positive=int(y.sum()),
        n_negative=int(len(y) - y.sum()),
        verdict=verdict,
    )


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

    from .bags import BagPooling

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
    if cv is None or isinstance(cv, numbers.Integral):
        cv = GroupKFold(5 if cv is None else int(cv))
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
