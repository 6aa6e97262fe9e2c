import numpy as np
import pytest
import torch

from he2rna_sklearn.model import HE2RNAModule, masked_mean, top_k_mean


def _reference(scores, n_real, ks):
    """Brute force: per bag and gene, sort the real tiles and average the top min(k, n)."""
    out = np.zeros((scores.shape[0], scores.shape[2]))
    for b, n in enumerate(n_real):
        real = scores[b, :n]
        srt = -np.sort(-real, axis=0)
        out[b] = np.mean([srt[: min(k, n)].mean(axis=0) for k in ks], axis=0)
    return out


@pytest.mark.parametrize("ks", [(1,), (3,), (1, 2, 5, 100), (10, 20, 5000)])
def test_top_k_mean_matches_brute_force(ks):
    rng = np.random.default_rng(0)
    n_real = np.array([1, 4, 9, 12])
    scores = rng.normal(size=(4, 12, 3)).astype(np.float32)
    mask = np.arange(12)[None, :] < n_real[:, None]
    got = top_k_mean(torch.from_numpy(scores), torch.from_numpy(mask), ks).numpy()
    np.testing.assert_allclose(got, _reference(scores, n_real, ks), rtol=1e-5, atol=1e-6)


def test_padding_never_wins_over_negative_scores():
    scores = torch.full((2, 6, 1), -5.0)
    scores[0, 4:] = 0.0  # padding positions of bag 0 hold zeros
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    out = top_k_mean(scores, mask, (1, 2, 5))
    assert torch.allclose(out, torch.full((2, 1), -5.0))


def test_gradients_are_finite_and_skip_padding():
    scores = torch.randn(2, 5, 2, requires_grad=True)
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    top_k_mean(scores, mask, (1, 10)).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[0, 2:] == 0).all()


def test_masked_mean():
    values = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert masked_mean(values, mask).item() == 2.0


def test_module_shapes_and_output_bias():
    m = HE2RNAModule(
        8,
        3,
        hidden_layer_sizes=(16, 4),
        ks=(1, 2),
        output_bias=[1.0, 2.0, 3.0],
        input_mean=np.ones(8),
        input_scale=np.full(8, 2.0),
    )
    x, mask = torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)
    assert m(x, mask).shape == (2, 3)
    assert m(x, mask, k=1).shape == (2, 3)
    assert m.tile_scores(x).shape == (2, 5, 3)
    assert m.embed(x, mask).shape == (2, 4)
    assert m.output.bias.tolist() == [1.0, 2.0, 3.0]
    # the standardisation buffers travel with the state dict
    assert {"input_mean", "input_scale"} <= set(m.state_dict())
