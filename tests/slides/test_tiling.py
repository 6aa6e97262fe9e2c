import numpy as np
import pytest

from he2rna_sklearn.slides import (
    SlideReader,
    grid_coords,
    plan_geometry,
    select_tissue_tiles,
    tile_fractions,
)

from ..conftest import CMU_SVS


def test_finer_than_base_is_refused():
    with SlideReader(CMU_SVS) as reader, pytest.raises(ValueError, match="upsampling"):
        plan_geometry(reader, 0.25, 224)


def test_near_base_resolution_reads_base_without_resampling():
    with SlideReader(CMU_SVS) as reader:
        g = plan_geometry(reader, 0.48, 224)
    assert g.level == 0 and g.read_size == 224 and g.mpp == pytest.approx(0.499)


def test_coarser_resolution_reads_best_level(tiny_cohort):
    with SlideReader(tiny_cohort.slide_paths[0]) as reader:
        g = plan_geometry(reader, 2.0, 112)
        assert reader.level_downsamples[g.level] == pytest.approx(4.0)
    factor = 2.0 / 0.495
    assert g.extent == pytest.approx(112 * factor)
    assert g.read_size == round(112 * factor / 4)


def test_grid_covers_whole_tiles_only():
    coords = grid_coords((1000, 450), 224)
    assert len(coords) == 4 * 2
    assert coords[:, 0].max() + 224 <= 1000 and coords[:, 1].max() + 224 <= 450
    assert coords[1].tolist() == [224, 0]  # row-major


def test_tile_fractions_match_mask():
    mask = np.zeros((10, 10), dtype=bool)
    mask[:, :5] = True
    coords = np.array([[0, 0], [50, 0], [20, 0]])
    frac = tile_fractions(mask, (10.0, 10.0), coords, 50)
    assert frac.tolist() == pytest.approx([1.0, 0.0, 0.6])


def test_max_tiles_is_deterministic_and_ordered():
    with SlideReader(CMU_SVS) as reader:
        g = plan_geometry(reader, 0.5, 112)
        all_tiles, _, _ = select_tissue_tiles(reader, g)
        a, _, _ = select_tissue_tiles(reader, g, max_tiles=10, random_state=3)
        b, _, _ = select_tissue_tiles(reader, g, max_tiles=10, random_state=3)
        c, _, _ = select_tissue_tiles(reader, g, max_tiles=10, random_state=4)
    assert len(all_tiles) > 10
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    order = a[:, 1] * 10**6 + a[:, 0]
    assert (np.diff(order) > 0).all()
    assert {tuple(t) for t in a} <= {tuple(t) for t in all_tiles}


def test_user_mask_replaces_detection():
    with SlideReader(CMU_SVS) as reader:
        g = plan_geometry(reader, 0.5, 224)
        mask = np.zeros((30, 20), dtype=bool)
        mask[:15, :10] = True  # top-left quarter
        coords, _, _ = select_tissue_tiles(reader, g, mask=mask)
    assert len(coords)
    centers = coords + 224 / 2
    assert (centers[:, 0] < 2220 / 2).all() and (centers[:, 1] < 2967 / 2).all()
