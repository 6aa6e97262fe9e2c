import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold

from he2rna_sklearn import HE2RNARegressor
from he2rna_sklearn.evaluation import cross_validate_genes
from he2rna_sklearn.metrics import gene_correlations

from .conftest import planted_fraction


@pytest.fixture(scope="module")
def cohort():
    bags, frac = planted_fraction(60, seed=3)
    rng = np.random.default_rng(0)
    Y = pd.DataFrame(
        {"MARKER": 2 + 3 * frac + rng.normal(0, 0.05, 60), "NOISE": rng.normal(size=60)}
    )
    groups = np.repeat(np.arange(30), 2)
    return bags, Y, groups


def test_protocol_tables(cohort):
    bags, Y, groups = cohort
    model = HE2RNARegressor(
        hidden_layer_sizes=(16,),
        ks=(1000,),
        max_epochs=60,
        lr=3e-3,
        validation_fraction=None,
        random_state=0,
    )
    res = cross_validate_genes(model, bags, Y, groups, cv=3)
    assert set(res.per_fold.columns) == {"gene", "fold", "r", "p", "n"}
    assert len(res.per_fold) == 2 * 3 and res.per_fold["n"].sum() == 2 * 60
    assert list(res.pooled.index) == ["MARKER", "NOISE"]
    assert res.predictions.shape == Y.shape and not res.predictions.isna().any().any()
    # pooled statistics are those of the out-of-fold predictions
    again = gene_correlations(Y, res.predictions)
    np.testing.assert_allclose(res.pooled["r"], again["r"])
    assert res.pooled.loc["MARKER", "r"] > 0.8
    assert res.summary["well_predicted_holm"] >= 1 and res.summary["n_folds"] == 3
    assert res.pooled.loc["MARKER", "p_holm"] < 0.05


def test_parallel_folds_give_the_same_result(cohort):
    bags, Y, groups = cohort
    model = HE2RNARegressor(
        hidden_layer_sizes=(8,), max_epochs=3, validation_fraction=None, random_state=0
    )
    a = cross_validate_genes(model, bags, Y, groups, cv=3)
    b = cross_validate_genes(model, bags, Y, groups, cv=3, n_jobs=2)
    pd.testing.assert_frame_equal(a.per_fold, b.per_fold)


class _ReportsParentWatch(BaseEstimator, RegressorMixin):
    """Predicts 1 where its process watches its parent (a joblib worker), else 0."""

    def fit(self, X, y, groups=None):
        self.n_outputs_ = np.asarray(y).reshape(len(y), -1).shape[1]
        return self

    def predict(self, X):
        import threading

        from he2rna_sklearn._parallel import WATCH_THREAD_NAME

        watched = any(t.name == WATCH_THREAD_NAME for t in threading.enumerate())
        return np.full((len(X), self.n_outputs_), float(watched))


@pytest.mark.filterwarnings("ignore:.*constant")
def test_fold_workers_exit_with_their_caller(cohort):
    # Workers of n_jobs=2 watch the process that started them (and exit when it dies, so
    # a killed 'he2rna evaluate --jobs 2' does not leave folds training); the caller's own
    # process, with n_jobs=1, starts no watch.
    bags, Y, groups = cohort
    parallel = cross_validate_genes(_ReportsParentWatch(), bags, Y, groups, cv=3, n_jobs=2)
    alone = cross_validate_genes(_ReportsParentWatch(), bags, Y, groups, cv=3)
    assert (parallel.predictions.to_numpy() == 1).all()
    assert (alone.predictions.to_numpy() == 0).all()


def test_refuses_splits_that_mix_patients(cohort):
    bags, Y, groups = cohort
    with pytest.raises(ValueError, match="both train and test"):
        cross_validate_genes(
            HE2RNARegressor(), bags, Y, groups, cv=KFold(3, shuffle=True, random_state=0)
        )


def test_int_cv_means_group_k_fold(cohort, monkeypatch):
    from he2rna_sklearn import evaluation

    seen = []
    real = evaluation._fit_predict

    def spy(estimator, X, Y, groups, train, test, fit_groups, **kwargs):
        seen.append((set(groups[train]), set(groups[test])))
        return real(estimator, X, Y, groups, train, test, fit_groups, **kwargs)

    monkeypatch.setattr(evaluation, "_fit_predict", spy)
    bags, Y, groups = cohort
    model = HE2RNARegressor(hidden_layer_sizes=(4,), max_epochs=1, validation_fraction=None)
    cross_validate_genes(model, bags, Y, groups, cv=4)
    assert len(seen) == 4 and all(not (a & b) for a, b in seen)


def test_aggregate_by_patient():
    from he2rna_sklearn.evaluation import aggregate_by_patient

    s = aggregate_by_patient([0.2, 0.4, 0.9, 0.1], ["B", "B", "A", "C"])
    assert list(s.index) == ["B", "A", "C"] and s["B"] == pytest.approx(0.3)
    m = aggregate_by_patient(np.array([[0.2, 0.8], [0.6, 0.4]]), ["P", "P"], how="max")
    assert m.loc["P"].tolist() == [0.6, 0.8]
    with pytest.raises(ValueError, match="how"):
        aggregate_by_patient([0.1], ["P"], how="vote")


class _GroupSpy(HE2RNARegressor):
    seen = []

    def fit(self, X, y, groups=None, projects=None):
        type(self).seen.append(None if groups is None else set(groups))
        return super().fit(X, y, groups=groups, projects=projects)


@pytest.mark.parametrize("routing", [False, True])
def test_groups_reach_the_regressor_in_a_pipeline(cohort, routing):
    # Issue 13: under metadata routing, a hand-built "<step>__groups" raised TypeError.
    from sklearn import config_context
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    bags, Y, groups = cohort
    _GroupSpy.seen = []
    spy = _GroupSpy(hidden_layer_sizes=(4,), max_epochs=1, validation_fraction=0.2)
    with config_context(enable_metadata_routing=routing):
        cross_validate_genes(make_pipeline(FunctionTransformer(), spy), bags, Y, groups, cv=2)
    assert len(_GroupSpy.seen) == 2 and all(s and len(s) == 15 for s in _GroupSpy.seen)


@pytest.mark.parametrize("routing", [False, True])
def test_steps_without_groups_get_none(cohort, routing):
    from sklearn import config_context
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from he2rna_sklearn import BagPooling

    bags, Y, groups = cohort
    baseline = make_pipeline(BagPooling(), StandardScaler(), RidgeCV())
    with config_context(enable_metadata_routing=routing):
        res = cross_validate_genes(baseline, bags, Y, groups, cv=3)
    assert res.pooled.loc["MARKER", "r"] > 0.8


def _mean_pool(X):
    return np.stack([np.asarray(b).mean(axis=0) for b in X])


@pytest.fixture(scope="module")
def two_projects():
    """60 slides of 30 patients in two projects; MARKER follows the bag only in project A."""
    bags, frac = planted_fraction(60, seed=4)
    rng = np.random.default_rng(1)
    project = np.repeat(np.array(["TCGA-A", "TCGA-B"]), 30)  # patients stay in one project
    marker = np.where(project == "TCGA-A", 2 + 3 * frac, rng.normal(2, 0.5, 60))
    Y = pd.DataFrame(
        {"MARKER": marker, "NOISE": rng.normal(size=60)},
        index=[f"S{i:02d}" for i in range(60)],
    )
    groups = np.repeat(np.arange(30), 2)
    return bags, Y, groups, project


def test_per_group_report(two_projects):
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    bags, Y, groups, project = two_projects
    model = make_pipeline(FunctionTransformer(_mean_pool), Ridge(alpha=1.0))
    res = cross_validate_genes(model, bags, Y, groups, cv=3, fit_groups=False, by=project)
    table = res.per_group.set_index(["group", "gene"])
    assert list(res.group_summary.index) == ["TCGA-A", "TCGA-B"]
    for label in ("TCGA-A", "TCGA-B"):
        rows = project == label
        expected = gene_correlations(Y[rows], res.predictions[rows])
        part = table.loc[label]
        np.testing.assert_allclose(part["r"], expected["r"])
        np.testing.assert_allclose(part["p_holm"], expected["p_holm"])
        assert (part["n"] == 30).all()
        # r_mean_folds: the mean over folds of r on the group's test slides of each fold
        fold_r = []
        for _, test in GroupKFold(3).split(bags, Y, groups):
            mine = test[rows[test]]
            fold_r.append(gene_correlations(Y.iloc[mine], res.predictions.iloc[mine])["r"])
        np.testing.assert_allclose(part["r_mean_folds"], pd.concat(fold_r, axis=1).mean(axis=1))
        summary = res.group_summary.loc[label]
        assert summary["n_slides"] == 30 and summary["n_patients"] == 15
        assert summary["mean_r_pooled"] == pytest.approx(expected["r"].mean())
    # The marker is predicted where it follows the tissue (A), not where it is noise (B).
    assert (
        table.loc[("TCGA-A", "MARKER"), "r"] > 0.5 > 0.3 > abs(table.loc[("TCGA-B", "MARKER"), "r"])
    )
    assert res.group_summary["well_predicted_holm"].tolist() == [1, 0]
    assert res.summary["n_groups"] == 2
    assert res.summary["mean_r_by_group_pooled"] == pytest.approx(
        res.group_summary["mean_r_pooled"].mean()
    )


def test_per_group_checks_and_small_groups(two_projects):
    from sklearn.dummy import DummyRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    bags, Y, groups, project = two_projects
    model = make_pipeline(FunctionTransformer(_mean_pool), DummyRegressor())
    run = dict(cv=3, fit_groups=False)
    with pytest.raises(ValueError, match="one label per slide"):
        cross_validate_genes(model, bags, Y, groups, by=project[:10], **run)
    labels = project.astype(object)
    labels[5] = None
    with pytest.raises(ValueError, match=r"missing labels at rows \[5\]"):
        cross_validate_genes(model, bags, Y, groups, by=labels, **run)
    shuffled = pd.Series(project, index=Y.index)[::-1]
    with pytest.raises(ValueError, match=r"by.loc\[Y.index\]"):
        cross_validate_genes(model, bags, Y, groups, by=shuffled, **run)
    tiny = project.copy()
    tiny[:2] = "TCGA-C"  # one patient of two slides
    with pytest.warns(UserWarning, match="fewer than 3 slides.*TCGA-C"):
        res = cross_validate_genes(model, bags, Y, groups, by=tiny, **run)
    assert res.per_group.query("group == 'TCGA-C'")["r"].isna().all()
    assert res.group_summary.loc["TCGA-C", "n_slides"] == 2


def test_merge_projects():
    from he2rna_sklearn.evaluation import PAPER_PROJECT_MERGES, merge_projects

    merged = merge_projects(["TCGA-LUAD", "LUSC", "TCGA-KIRP", "kich", "UCS", "TCGA-COAD"])
    assert merged.tolist() == [
        "TCGA-LUAD+LUSC",
        "LUAD+LUSC",
        "TCGA-KIRC+KIRP+KICH",
        "KIRC+KIRP+KICH",
        "UCEC+UCS",
        "TCGA-COAD",
    ]
    assert set(PAPER_PROJECT_MERGES.values()) == {"LUAD+LUSC", "KIRC+KIRP+KICH", "UCEC+UCS"}
    series = pd.Series(["READ", "COAD"], index=["s1", "s2"], name="project")
    out = merge_projects(series, {"COAD": "COADREAD", "READ": "COADREAD"})
    assert out.index.tolist() == ["s1", "s2"] and out.tolist() == ["COADREAD", "COADREAD"]
    with pytest.raises(ValueError, match="missing codes"):
        merge_projects(["LUAD", None])


def test_gene_correlations_by_group_on_given_predictions():
    from he2rna_sklearn.evaluation import gene_correlations_by_group

    rng = np.random.default_rng(0)
    Y = pd.DataFrame(rng.normal(size=(30, 2)), columns=["G1", "G2"])
    pred = Y + rng.normal(size=(30, 2))
    by = np.array(["COAD"] * 12 + ["READ"] * 18)
    res = gene_correlations_by_group(Y, pred, by)
    assert list(res.per_group.columns) == ["group", "gene", "r", "p", "p_holm", "p_bh", "n"]
    assert list(res.group_summary.columns) == [
        "n_slides",
        "mean_r_pooled",
        "well_predicted_holm",
        "well_predicted_bh",
    ]
    read = gene_correlations(Y[by == "READ"], pred[by == "READ"])
    np.testing.assert_allclose(res.per_group.query("group == 'READ'")["r"], read["r"])
    assert res.mean_r_by_group_pooled == pytest.approx(res.group_summary["mean_r_pooled"].mean())
    folds = np.arange(30) % 3
    res = gene_correlations_by_group(Y, pred, by, folds=folds, patient_ids=np.arange(30) // 2)
    assert res.group_summary.loc["COAD", "n_patients"] == 6
    assert np.isfinite(res.mean_r_by_group_folds)
    parts = [(by == "COAD") & (folds == f) for f in range(3)]
    per_fold = [gene_correlations(Y[part], pred[part])["r"] for part in parts]
    np.testing.assert_allclose(
        res.per_group.query("group == 'COAD'")["r_mean_folds"], np.mean(per_fold, axis=0)
    )
    with pytest.raises(ValueError, match="shape"):
        gene_correlations_by_group(Y, pred.iloc[:5], by)
    with pytest.raises(ValueError, match="folds must hold one fold per slide"):
        gene_correlations_by_group(Y, pred, by, folds=folds[:3])


def test_compare_to_baseline_table_and_verdict(cohort):
    from sklearn.dummy import DummyRegressor
    from sklearn.pipeline import make_pipeline

    from he2rna_sklearn import BagPooling
    from he2rna_sklearn.evaluation import compare_to_baseline, ridge_baseline

    bags, Y, groups = cohort
    constant = make_pipeline(BagPooling(), DummyRegressor())
    res = compare_to_baseline(constant, bags, Y, groups, cv=3)
    assert list(res.table.columns) == ["DummyRegressor", "ridge baseline", "difference"]
    assert res.table.loc["genes significant (Holm)", "ridge baseline"] >= 1
    assert res.table.loc["genes significant (Holm)", "DummyRegressor"] == 0
    assert "DummyRegressor does NOT beat the ridge baseline" in res.verdict
    # the same folds for both: the baseline's own result is cross_validate_genes'
    again = cross_validate_genes(ridge_baseline(), bags, Y, groups, cv=3)
    pd.testing.assert_frame_equal(res.baseline.pooled, again.pooled)
    flipped = compare_to_baseline(ridge_baseline(), bags, Y, groups, cv=3, baseline=constant)
    assert flipped.verdict.startswith("RidgeCV beats the DummyRegressor")


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

    from he2rna_sklearn.evaluation import _rank_auc

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=50)
    s = np.round(rng.normal(size=50), 1)  # with ties
    assert _rank_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(_rank_auc(np.zeros(5, int), s[:5]))
