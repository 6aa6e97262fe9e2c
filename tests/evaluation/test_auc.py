"""Patient scores and the comparison of two ROC AUCs with a bootstrap interval."""

import numpy as np
import pytest


def test_aggregate_by_patient():
    from he2rna_sklearn.evaluation import aggregate_by_patient

    s = aggregate_by_patient([0.2, 0.4, 0.9, 0.1], ["B", "B", "A", "C"])
    assert list(s.index) == ["B", "A", "C"] and s["B"] == pytest.approx(0.3)
    m = aggregate_by_patient(np.array([[0.2, 0.8], [0.6, 0.4]]), ["P", "P"], how="max")
    assert m.loc["P"].tolist() == [0.6, 0.8]
    with pytest.raises(ValueError, match="how"):
        aggregate_by_patient([0.1], ["P"], how="vote")


def test_compare_auc_tells_a_real_gain_from_chance():
    from he2rna_sklearn.evaluation import compare_auc

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], [70, 14])  # about a TCGA project's MSI-H share
    signal = y + rng.normal(scale=0.7, size=len(y))
    noise = rng.normal(size=len(y))
    better = compare_auc(y, signal, noise, random_state=0, n_resamples=1000)
    assert better.auc > 0.8 and abs(better.auc_baseline - 0.5) < 0.2
    assert better.ci_low > 0 and better.verdict.startswith("better")
    worse = compare_auc(y, noise, signal, random_state=0, n_resamples=1000)
    assert worse.ci_high < 0 and worse.verdict.startswith("worse")
    # two noisy copies of the same signal: the interval spans 0
    tie = compare_auc(
        y,
        signal + rng.normal(scale=0.3, size=len(y)),
        signal + rng.normal(scale=0.3, size=len(y)),
        random_state=0,
        n_resamples=1000,
    )
    assert tie.ci_low < 0 < tie.ci_high and tie.verdict.startswith("not distinguishable")
    assert (tie.n_positive, tie.n_negative) == (14, 70)
    named = np.where(y == 1, "MSI-H", "MSS")
    by_name = compare_auc(named, signal, noise, pos_label="MSI-H", random_state=0, n_resamples=1000)
    assert (by_name.auc, by_name.ci_low) == (better.auc, better.ci_low)
    assert compare_auc(y, signal, noise, random_state=0, n_resamples=1000).ci_low == better.ci_low


def test_compare_auc_draws_keep_both_classes():
    # 2 positives of 12: an unstratified draw of patients has none 11% of the time
    from he2rna_sklearn.evaluation import compare_auc

    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], [10, 2])
    res = compare_auc(y, y + rng.normal(size=12), rng.normal(size=12), n_resamples=300)
    assert np.isfinite([res.ci_low, res.ci_high]).all() and res.ci_low <= res.ci_high


def test_compare_auc_averages_repeats():
    from sklearn.metrics import roc_auc_score

    from he2rna_sklearn.evaluation import compare_auc

    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], [40, 12])
    a = y[:, None] + rng.normal(size=(52, 3))  # three repeats of a cross-validation
    b = rng.normal(size=(52, 3))
    res = compare_auc(y, a, b, random_state=0, n_resamples=500)
    assert res.auc == pytest.approx(np.mean([roc_auc_score(y, c) for c in a.T]))
    assert res.difference == pytest.approx(res.auc - res.auc_baseline)
    single = compare_auc(y, a[:, 0], b[:, 0], random_state=0, n_resamples=500)
    assert single.auc == pytest.approx(roc_auc_score(y, a[:, 0]))
    # averaging repeats narrows the interval of the difference
    assert res.ci_high - res.ci_low < single.ci_high - single.ci_low


def test_compare_auc_draws_patients_with_all_their_slides():
    from he2rna_sklearn.evaluation import compare_auc

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], [30, 10])
    a, b = y + rng.normal(size=40), rng.normal(size=40)
    # every patient has 4 identical slides: drawing slides would shrink the interval 2x
    y4, a4, b4 = (np.repeat(v, 4) for v in (y, a, b))
    patients = np.repeat(np.arange(40), 4)
    by_patient = compare_auc(y4, a4, b4, groups=patients, random_state=0, n_resamples=1000)
    by_slide = compare_auc(y4, a4, b4, random_state=0, n_resamples=1000)
    once = compare_auc(y, a, b, random_state=0, n_resamples=1000)
    width = lambda r: r.ci_high - r.ci_low  # noqa: E731
    assert width(by_patient) == pytest.approx(width(once), rel=0.25)
    assert width(by_slide) < 0.7 * width(by_patient)


def test_compare_auc_errors():
    from he2rna_sklearn.evaluation import compare_auc

    with pytest.raises(ValueError, match="two classes"):
        compare_auc([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="missing label"):
        compare_auc([1, 0, np.nan], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    msi = np.array(["MSS", "MSI-H", "MSS", "MSI-H"])
    with pytest.raises(ValueError, match="pos_label"):
        compare_auc(msi, [0.1, 0.2, 0.3, 0.4], [0.3, 0.2, 0.1, 0.0])
    with pytest.raises(ValueError, match="not a label"):
        compare_auc(msi, [0.1, 0.2, 0.3, 0.4], [0.3, 0.2, 0.1, 0.0], pos_label="MSIH")
    with pytest.raises(ValueError, match="all negative"):
        compare_auc([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.0], [0.3, 0.2, 0.1, 0.0], groups=[1, 1, 2, 2])
    with pytest.raises(ValueError, match="same length"):
        compare_auc([0, 1], [0.1, 0.2, 0.3], [0.3, 0.2])
    with pytest.raises(ValueError, match="finite"):
        compare_auc([0, 1, 0], [0.1, np.nan, 0.3], [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="groups"):
        compare_auc([0, 1, 0], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1], groups=[1, 2])


def test_rank_auc_is_roc_auc_score():
    from sklearn.metrics import roc_auc_score

    from he2rna_sklearn.evaluation._auc import _rank_auc

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=50)
    s = np.round(rng.normal(size=50), 1)  # with ties
    assert _rank_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(_rank_auc(np.zeros(5, int), s[:5]))
