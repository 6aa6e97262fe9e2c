"""Per-group reports of gene predictions (the paper's pan-cancer tables): correlations
within each TCGA project, and the paper's merges of projects."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ..metrics import gene_correlations

__all__ = ["PAPER_PROJECT_MERGES", "gene_correlations_by_group", "merge_projects"]

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
