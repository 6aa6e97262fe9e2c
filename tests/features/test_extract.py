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


def test_runner_casts_a_copy_of_a_user_module(tiny_cnn):
    """The bf16 weights are a copy's; a backbone built here (by name) is cast in place."""
    before = {k: v.clone() for k, v in tiny_cnn.state_dict().items()}
    runner = FeatureRunner(build_backbone(tiny_cnn, None), device="cpu", precision="bf16")
    assert runner.module is not tiny_cnn
    assert all(p.dtype == torch.bfloat16 for p in runner.module.parameters())
    assert not runner.module.training
    runner(torch.randint(0, 256, (2, 3, 48, 48), dtype=torch.uint8))
    for key, value in tiny_cnn.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, before[key])
    # fp32 on the CPU converts nothing: the copy shares the user's tensors (no memory).
    tiny_cnn.train()
    fp32 = FeatureRunner(build_backbone(tiny_cnn, None), device="cpu", precision="fp32")
    assert not fp32.module.training and tiny_cnn.training
    assert fp32.module.conv1.weight.data_ptr() == tiny_cnn.conv1.weight.data_ptr()
    built = build_backbone("resnet18", None)
    runner = FeatureRunner(built, device="cpu", precision="bf16")
    assert runner.module is built.module
    assert next(built.module.parameters()).dtype == torch.bfloat16


def test_weights_id_of_a_bf16_module(tiny_cnn):
    """A module already in bfloat16 (numpy has no such dtype) still gets a weights id."""
    fp32_id = build_backbone(tiny_cnn, None).weights_id
    bf16_id = build_backbone(tiny_cnn.to(torch.bfloat16), None).weights_id
    assert bf16_id.startswith("module:TinyCNN:sha1=") and bf16_id != fp32_id
