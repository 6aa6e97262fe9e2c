import numpy as np
import pytest

from he2rna_sklearn.features import ReinhardNormalizer
from he2rna_sklearn.features._stain import lab_to_rgb, rgb_to_lab


def test_lab_roundtrip():
    rgb = np.random.default_rng(0).integers(0, 256, (50, 50, 3)).astype(np.uint8)
    assert np.abs(lab_to_rgb(rgb_to_lab(rgb)).astype(int) - rgb).max() <= 1


def test_known_lab_values():
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.1)


def test_tile_takes_target_statistics():
    rng = np.random.default_rng(1)
    ref = np.clip(rng.normal((150, 80, 160), 20, (64, 64, 3)), 0, 255).astype(np.uint8)
    tile = np.clip(rng.normal((200, 120, 120), 10, (64, 64, 3)), 0, 255).astype(np.uint8)
    norm = ReinhardNormalizer().fit(ref)
    out_lab = rgb_to_lab(norm(tile)).reshape(-1, 3)
    np.testing.assert_allclose(out_lab.mean(0), norm.target_mean, atol=1.5)
    np.testing.assert_allclose(out_lab.std(0), norm.target_std, rtol=0.1)
    np.testing.assert_array_equal(norm(ref).shape, ref.shape)


def test_needs_a_target():
    with pytest.raises(ValueError, match="fit"):
        ReinhardNormalizer()(np.zeros((4, 4, 3), dtype=np.uint8))
