import numpy as np
import openslide
import pandas as pd
import pytest

from he2rna_sklearn.datasets import (
    COHORT_CLASS_NAMES,
    SIGNATURES,
    make_expression_cohort,
    signature_scores,
)


def _expression(n, seed=0):
    """Fake log expression in which each signature follows one latent factor per sample."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, len(SIGNATURES)))
    columns = {}
    for j, genes in enumerate(SIGNATURES.values()):
        for gene in genes:
            columns[gene] = 3 + factors[:, j] + rng.normal(0, 0.3, n)
    columns["OTHER"] = rng.normal(3, 1, n)
    index = [f"TCGA-AA-{i:04d}-01A" for i in range(n)]
    return pd.DataFrame(columns, index=index), factors


def test_signature_scores_follow_their_genes():
    expr, factors = _expression(50)
    scores = signature_scores(expr)
    assert list(scores.columns) == list(SIGNATURES)
    for j, name in enumerate(SIGNATURES):
        assert np.corrcoef(scores[name], factors[:, j])[0, 1] > 0.9
    with pytest.raises(ValueError, match="No gene of signature 'x'"):
        signature_scores(expr, {"x": ["NOT_A_GENE"]})


def test_each_slide_follows_its_own_expression(tmp_path):
    expr, _ = _expression(40, seed=1)
    msi = pd.Series(["MSIH", "MSS"] * 20, index=expr.index)
    c = make_expression_cohort(
        expr, tmp_path, msi=msi, grid=(6, 8), strength=2.0, noise=0.1, progress=False
    )
    assert c.expression is expr and list(c.slide_ids) == list(expr.index)
    assert c.class_names == COHORT_CLASS_NAMES and len(c.class_maps) == 40
    assert np.allclose(c.composition.sum(axis=1), 1.0)
    assert c.msi.tolist() == msi.tolist()
    scores = signature_scores(expr)
    for name in c.composition.columns:  # the drawn weights follow the signature scores
        assert np.corrcoef(c.target_composition[name], scores[name])[0, 1] > 0.6, name
    # and the realised tissue of each slide follows its weights
    r = np.corrcoef(c.composition["lymphocytes"], c.target_composition["lymphocytes"])[0, 1]
    assert r > 0.5
    slide = openslide.OpenSlide(c.slide_paths[0])
    assert slide.dimensions == (8 * 150, 6 * 150)
    assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.495, rel=1e-3)
    slide.close()


def test_bad_input(tmp_path):
    expr, _ = _expression(4)
    with pytest.raises(TypeError, match="DataFrame"):
        make_expression_cohort(expr.to_numpy(), tmp_path)
    bad = expr.copy()
    bad.iloc[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make_expression_cohort(bad, tmp_path)
    with pytest.raises(ValueError, match="no label for samples"):
        make_expression_cohort(expr, tmp_path, msi=pd.Series(["MSS"], index=expr.index[:1]))
    with pytest.raises(ValueError, match="2 patient ids for 4 samples"):
        make_expression_cohort(expr, tmp_path, patient_ids=["a", "b"])
