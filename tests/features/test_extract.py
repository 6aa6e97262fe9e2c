import numpy as np
import pytest
import torch

from he2rna_sklearn.features import FeatureRunner, build_backbone


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_runner_normalises_and_pools(precision, tiny_cnn):
    runner = FeatureRunner(build_backbone(tiny_cnn, None), device="cpu", precision=precision)
    tiles = torch.randint(0, 256, (5, 3, 48, 48), dtype=torch.uint8)
    feats = runner(tiles)
    assert feats.shape == (5, 16) and feats.dtype == np.float32
    x = (tiles.float() - runner.mean) / runner.std
    with torch.no_grad():
        expected = tiny_cnn.float()(x).numpy() if precision == "fp32" else None
    if expected is not None:
        np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-5)
    assert runner.n_features(48) == 16


def test_bf16_features_close_to_fp32():
    fp32 = FeatureRunner(build_backbone("resnet18", None), device="cpu", precision="fp32")
    bf16 = FeatureRunner(build_backbone("resnet18", None), device="cpu", precision="bf16")
    tiles = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    a, b = fp32(tiles), bf16(tiles)
    corr = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert corr > 0.98
