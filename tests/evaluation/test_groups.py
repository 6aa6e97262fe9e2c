"""Per-project reports: gene_correlations_by_group and merge_projects."""

import numpy as np
import pandas as pd
import pytest

from he2rna_sklearn.evaluation import cross_validate_genes
from he2rna_sklearn.metrics import gene_correlations

from ..conftest import planted_fraction


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
