import hashlib

import numpy as np
import openslide
import pytest
import tifffile

from he2rna_sklearn.datasets import (
    CLASS_NAMES,
    GENE_PROGRAMS,
    make_synthetic_cohort,
    tile_classes,
)


def test_slides_open_in_openslide_with_mpp_and_levels(tiny_cohort):
    for path in tiny_cohort.slide_paths:
        slide = openslide.OpenSlide(path)
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.495, rel=1e-3)
        assert slide.level_count == 3
        assert slide.dimensions == (8 * 150, 6 * 150)
        assert slide.level_downsamples[1] == pytest.approx(4.0)
        slide.close()
        with tifffile.TiffFile(path) as tif:
            assert len(tif.pages) == 3
            for page in tif.pages:
                assert page.is_tiled and page.compression == tifffile.COMPRESSION.JPEG


def test_bunch_contents(tiny_cohort):
    c = tiny_cohort
    n = len(c.slide_paths)
    assert c.expression.shape[0] == n == len(c.patient_ids) == len(c.msi) == len(c.class_maps)
    assert c.class_names == CLASS_NAMES
    assert set(c.genes["program"]) == set(GENE_PROGRAMS) | {"noise"}
    assert np.allclose(c.composition.sum(axis=1), 1.0)
    assert set(c.msi) <= {"MSI-H", "MSS"}
    # some patients have two slides, and they share the patient's expression
    counts = c.expression.groupby(c.patient_ids).size()
    two = counts[counts == 2].index
    assert len(two) >= 1
    rows = c.expression[c.patient_ids == two[0]]
    assert np.allclose(rows.iloc[0], rows.iloc[1])


def test_deterministic(tmp_path, tiny_cohort):
    again = make_synthetic_cohort(
        n_patients=10, out_dir=tmp_path, grid=(6, 8), random_state=0, progress=False
    )
    assert again.expression.equals(tiny_cohort.expression)
    for a, b in zip(again.slide_paths, tiny_cohort.slide_paths):
        assert (
            hashlib.sha1(open(a, "rb").read()).digest()
            == hashlib.sha1(open(b, "rb").read()).digest()
        )
    other = make_synthetic_cohort(
        n_patients=10, out_dir=tmp_path / "o", grid=(6, 8), random_state=1, progress=False
    )
    assert not other.expression.equals(tiny_cohort.expression)


def test_biology_is_planted(tmp_path):
    c = make_synthetic_cohort(
        n_patients=80, out_dir=tmp_path, grid=(8, 10), random_state=2, progress=False
    )
    patient_comp = c.composition.groupby(c.patient_ids).mean()
    expr = c.expression.groupby(c.patient_ids).first().loc[patient_comp.index]
    for program, genes in GENE_PROGRAMS.items():
        r = np.corrcoef(patient_comp[program], expr[genes[0]])[0, 1]
        assert r > 0.8, program
    noise = [g for g in expr.columns if g.startswith("NOISE")]
    r_noise = [abs(np.corrcoef(patient_comp["lymphoid"], expr[g])[0, 1]) for g in noise]
    assert np.mean(r_noise) < 0.3
    msi = c.msi.groupby(c.patient_ids).first().loc[patient_comp.index] == "MSI-H"
    assert (
        patient_comp.loc[msi, "lymphoid"].mean() > 1.4 * patient_comp.loc[~msi, "lymphoid"].mean()
    )
    assert patient_comp.loc[msi, "mucin"].mean() > patient_comp.loc[~msi, "mucin"].mean()


def test_class_maps_are_spatially_coherent(tiny_cohort):
    cmap = tiny_cohort.class_maps[0]
    assert cmap.shape == (6, 8)
    same = (cmap[:, 1:] == cmap[:, :-1]).mean()
    assert same > 0.4  # neighbours agree far more often than chance (1/7)


def test_tile_classes():
    cmap = np.array([[1, 1, 3], [1, 3, 3]])
    coords = np.array([[0, 0], [150, 0], [200, 100]])
    labels = tile_classes(coords, 150, cmap, cell_size=150)
    assert labels.tolist() == [1, 1, 3]
