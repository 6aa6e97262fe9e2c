"""Patient-level scores and the comparison of two ROC AUCs on the same slides, with a
stratified paired bootstrap interval of their difference."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

__all__ = ["aggregate_by_patient", "compare_auc"]


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
