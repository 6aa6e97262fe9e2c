import numpy as np
import pytest

from he2rna_sklearn.slides import otsu_threshold, tissue_mask


def test_otsu_separates_two_modes():
    rng = np.random.default_rng(0)
    values = np.r_[rng.normal(0.1, 0.02, 500), rng.normal(0.7, 0.05, 300)]
    t = otsu_threshold(values)
    assert 0.2 < t < 0.6


def _slide_with_blob():
    img = np.full((100, 120, 3), 240, dtype=np.uint8)
    yy, xx = np.mgrid[0:100, 0:120]
    blob = (yy - 50) ** 2 + (xx - 40) ** 2 < 20**2
    img[blob] = (170, 80, 140)  # H&E-like purple
    return img, blob


def test_mask_finds_stained_tissue():
    img, blob = _slide_with_blob()
    mask = tissue_mask(img)
    overlap = (mask & blob).sum() / blob.sum()
    assert overlap > 0.95
    assert (mask & ~blob).sum() < 0.05 * blob.sum()


def test_blank_slide_has_no_tissue():
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(242, 2, size=(80, 80, 3)), 0, 255).astype(np.uint8)
    assert not tissue_mask(img).any()


def test_pen_black_is_not_tissue():
    img, blob = _slide_with_blob()
    img[:, 100:] = 5
    mask = tissue_mask(img)
    assert not mask[:, 102:].any()


def test_rejects_non_rgb():
    with pytest.raises(ValueError, match="RGB"):
        tissue_mask(np.zeros((10, 10)))
