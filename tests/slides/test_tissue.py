import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import he2rna_sklearn.datasets
from he2rna_sklearn.slides import (
    AUTO_TISSUE_MASK,
    AUTO_TISSUE_MASK_PEN_MARKS_KEPT,
    otsu_threshold,
    tissue_mask,
)

from ..conftest import CMU_SVS


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


# Pen marks, on real H&E: the packaged Kather 2016 tiles (150 px at 0.495 µm/px) laid on real
# glass and reduced 4x (about 2 µm/px, a fine thumbnail). Marker ink is painted as a
# transmitting absorber (Beer-Lambert): pixel * (ink on glass / glass) ** load. Ink colours lie
# in the ranges histolab's and python-wsi-preprocessing's pen filters give for TCGA slides.
KATHER = Path(he2rna_sklearn.datasets.__file__).parent / "data" / "kather2016"
GLASS = (242.0, 243.0, 243.0)
INKS = {
    "blue": (35, 75, 170),
    "light blue": (110, 140, 215),
    "green": (40, 130, 110),
    "black": (30, 30, 38),
}


def _reduce(img, f=4):
    h, w = img.shape[0] // f * f, img.shape[1] // f * f
    return img[:h, :w].reshape(h // f, f, w // f, f, 3).mean(axis=(1, 3))


def _scene(classes=("01_TUMOR", "04_LYMPHO", "02_STROMA")):
    """One tissue row per class (its three tiles) with real glass around: float RGB."""
    glass = np.asarray(Image.open(sorted((KATHER / "08_EMPTY").glob("*.tif"))[0]), np.float32)
    rows = [
        np.hstack([np.asarray(Image.open(p), np.float32) for p in sorted((KATHER / c).glob("*"))])
        for c in classes
    ]
    img = np.tile(glass, (len(rows) + 2, 5, 1))  # 150 px of glass all around
    box = np.zeros(img.shape[:2], dtype=bool)
    for i, row in enumerate(rows):
        img[150 * (i + 1) : 150 * (i + 2), 150:600] = row
        box[150 * (i + 1) : 150 * (i + 2), 150:600] = True
    return img, box


def _paint(img, load, ink):
    return img * (np.asarray(ink, np.float32) / np.asarray(GLASS, np.float32)) ** load[..., None]


def _u8(img):
    return np.clip(_reduce(img), 0, 255).astype(np.uint8)


def test_he_tissue_is_kept_with_pen_exclusion():
    """Hematoxylin-dark lymphoid and eosin-rich stromal tissue are not taken for ink."""
    img, box = _scene(("04_LYMPHO", "02_STROMA", "01_TUMOR", "06_MUCOSA"))
    thumb = _u8(img)
    without = tissue_mask(thumb, exclude_pen_marks=False)
    with_pen = tissue_mask(thumb)
    assert without.sum() > 0.8 * _reduce(np.dstack([box] * 3))[..., 0].sum()
    assert (with_pen & without).sum() >= 0.999 * without.sum()


# Fraction of the ink lying over tissue that the mask must leave out: light ink over tissue is
# not always found (documented); black ink over tissue was already mostly left out.
OVER_TISSUE_LEFT_OUT = {"blue": 0.25, "light blue": 0.0, "green": 0.9, "black": 0.9}


@pytest.mark.parametrize("ink", list(INKS))
def test_pen_strokes_on_glass_and_over_tissue(ink):
    """Two 40-px bands of ink (20 µm: the scene is small; a real stroke is 0.3-1 mm wide),
    one on glass, one across tissue and glass."""
    img, box = _scene()
    load = np.zeros(img.shape[:2], np.float32)
    load[:, 660:700] = 1.0  # on glass, right of the tissue
    load[200:240, :] = 1.0  # across the first tissue row and the glass beside it
    thumb = _u8(_paint(img, load, INKS[ink]))
    clean = tissue_mask(_u8(img), exclude_pen_marks=False)  # the tissue, before any ink
    tissue = _reduce(np.dstack([box] * 3))[..., 0] == 1
    inked = _reduce(np.dstack([load] * 3))[..., 0]
    on_glass, over_tissue = (inked == 1) & ~tissue, (inked == 1) & tissue & clean
    mask = tissue_mask(thumb)
    assert mask[on_glass].mean() < 0.01, "ink on glass is not tissue"
    assert 1 - mask[over_tissue].mean() >= OVER_TISSUE_LEFT_OUT[ink]
    assert mask[clean & (inked == 0)].mean() > 0.99, "tissue away from the ink is kept"
    if ink != "black":  # the old mask took blue and green ink on glass for tissue
        assert tissue_mask(thumb, exclude_pen_marks=False)[on_glass].mean() > 0.9


def test_a_ring_drawn_around_tissue_does_not_fill_the_glass_inside():
    img, box = _scene(("01_TUMOR",))
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    r = np.hypot((yy - 225) / 210, (xx - 375) / 330)
    load = (np.abs(r - 1) < 0.08).astype(np.float32)
    thumb = _u8(_paint(img, load, INKS["blue"]))
    inside = _reduce(np.dstack([(r < 0.9) & ~box] * 3))[..., 0] == 1
    assert tissue_mask(thumb, exclude_pen_marks=False)[inside].mean() > 0.9  # filled before
    assert tissue_mask(thumb)[inside].mean() == 0


def test_the_automatic_mask_is_in_the_feature_spec():
    """Features cached with another automatic mask (before pen marks were excluded, the spec
    recorded None) are not served: the spec, hence the cache key, names the detection."""
    from types import SimpleNamespace

    from he2rna_sklearn.features._spec import FeatureSpec

    runner = SimpleNamespace(
        backbone=SimpleNamespace(name="tiny", weights_id="none"), precision="fp32"
    )
    spec = FeatureSpec(
        mpp=1.0, tile_size=112, max_tiles=None, min_tissue_fraction=0.5, random_state=0
    )
    auto = spec.for_slide(CMU_SVS, runner)
    assert auto.tissue_mask == AUTO_TISSUE_MASK
    before = dataclasses.replace(auto, tissue_mask=None)
    assert before.key() != auto.key()
    user = spec.for_slide(CMU_SVS, runner, mask=np.ones((4, 4), dtype=bool))
    assert user.tissue_mask not in (None, AUTO_TISSUE_MASK)


def test_the_pen_mark_setting_is_in_the_feature_spec():
    """Keeping pen marks names another automatic mask, hence another cache key; the default
    keeps the name, and the key, of features cached before the setting existed."""
    from types import SimpleNamespace

    from he2rna_sklearn import SlideFeaturizer

    runner = SimpleNamespace(
        backbone=SimpleNamespace(name="tiny", weights_id="none"), precision="fp32"
    )
    kwargs = dict(mpp=1.0, tile_size=112)
    default = SlideFeaturizer(**kwargs).feature_spec()
    kept = SlideFeaturizer(exclude_pen_marks=False, **kwargs).feature_spec()
    a = default.for_slide(CMU_SVS, runner, fingerprint="0" * 64)
    b = kept.for_slide(CMU_SVS, runner, fingerprint="0" * 64)
    assert a.tissue_mask == AUTO_TISSUE_MASK == "auto:saturation-otsu,pen-marks-excluded"
    assert b.tissue_mask == AUTO_TISSUE_MASK_PEN_MARKS_KEPT != AUTO_TISSUE_MASK
    assert a != b and a.key() != b.key()
    # the key of the default as the code before the setting derived it (format 2): the
    # caches it wrote stay valid
    assert dataclasses.replace(a, format_version=2).key() == "ac116b84376a9fc9"
    # a user mask replaces the automatic detection: the setting does not change its key
    mask = np.ones((4, 4), dtype=bool)
    assert default.for_slide(CMU_SVS, runner, mask=mask) == kept.for_slide(
        CMU_SVS, runner, mask=mask
    )
