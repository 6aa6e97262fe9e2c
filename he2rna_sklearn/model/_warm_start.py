"""Closed-form warm start of the HE2RNA network: start where a ridge regression ends.

A linear tile scorer with mean pooling is exactly a linear model of the mean-pooled
features, so a ridge regression on pooled features lies inside HE2RNA's family. On cohorts
of tens to hundreds of slides, Adam from a random start does not get there: with a few
steps per epoch, its weights move by about ``lr`` per step, and its predictions stay shrunk
to the training mean. The warm start puts the network at such a solution before the first
step:

* the first hidden layer holds the leading principal directions of the (standardised) tile
  features as +/- pairs, ``ReLU(p.x)`` and ``ReLU(-p.x)``, whose difference is the linear
  projection ``p.x``: the hidden layers lose none of the linear information they carry,
  and the mean of each half over a slide is a soft count of the tiles on that side of the
  direction (a tissue-fraction-like feature); further hidden layers start as the identity
  on those units;
* the output layer is the ridge regression of the targets on the pooled hidden units
  *under the network's own top-k pooling*. For a fixed choice of the top tiles, the
  pooled output of gene g is linear in its output weights, ``w_g . z_g + b_g``, where
  ``z_g`` is the average over ks of the mean hidden vector of gene g's top-k tiles. So the
  readout alternates: solve one ridge regression per gene on its ``z_g`` (in the dual,
  batched over genes), then re-select each gene's top tiles with the new weights, starting
  from mean pooling (the ridge on mean-pooled units). The penalty is chosen once, by
  leave-one-out cross-validation of the mean-pooled ridge (``RidgeCV``).

Training then refines all layers by gradient descent, top-k pooling included.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from sklearn.utils import check_random_state
from torch import nn

__all__ = ["RIDGE_ALPHAS", "init_hidden_pca", "init_output_ridge"]

#: Ridge penalties tried by the closed-form readout (leave-one-out CV picks one).
RIDGE_ALPHAS = np.logspace(-2, 5, 15)

_PIECEWISE_LINEAR = (nn.ReLU, nn.LeakyReLU)


def _sample_tiles(bags, max_tiles, random_state):
    rng = check_random_state(random_state)
    parts, count = [], 0
    for i in rng.permutation(len(bags)):
        arr = np.asarray(bags[i], dtype=np.float32)
        parts.append(arr)
        count += len(arr)
        if count >= max_tiles:
            break
    tiles = np.concatenate(parts)
    if len(tiles) > max_tiles:
        tiles = tiles[rng.choice(len(tiles), max_tiles, replace=False)]
    return tiles


@torch.no_grad()
def init_hidden_pca(module, bags, *, max_tiles=50_000, random_state=None):
    """Set the hidden layers to +/- principal directions of the tile features (see module).

    Only for piecewise-linear activations (ReLU, leaky ReLU), where the +/- pairs keep the
    linear information; other activations keep their random initialisation. Returns
    whether the layers were set.
    """
    linears = [m for m in module.hidden if isinstance(m, nn.Linear)]
    others = [m for m in module.hidden if not isinstance(m, (nn.Linear, nn.Dropout))]
    if not linears or not all(isinstance(m, _PIECEWISE_LINEAR) for m in others):
        return False
    tiles = _sample_tiles(bags, max_tiles, random_state)
    z = (tiles - module.input_mean.cpu().numpy()) / module.input_scale.cpu().numpy()
    _, _, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
    first = linears[0]
    n_pairs = min(first.out_features // 2, vt.shape[0])
    weight = first.weight.detach().cpu().numpy() * 0.01  # spare units: small random rows
    weight[:n_pairs] = vt[:n_pairs]
    weight[n_pairs : 2 * n_pairs] = -vt[:n_pairs]
    first.weight.copy_(torch.as_tensor(weight, device=first.weight.device))
    first.bias.zero_()
    for layer in linears[1:]:
        eye = layer.weight * 0.01  # spare units beyond the identity: small random rows
        n = min(eye.shape)
        eye[:n, :n] = torch.eye(n, device=eye.device)
        layer.weight.copy_(eye)
        layer.bias.zero_()
    return True


def _tile_embeddings(module, bags, device):
    """Each bag's last hidden layer, (n_tiles, H) tensors (on ``device``)."""
    return [
        module.tile_embeddings(torch.as_tensor(np.asarray(b, dtype=np.float32), device=device))
        for b in bags
    ]


def _pooled_design(hidden, weight, bias, ks):
    """Per bag and gene, the top-k-pooled hidden vector ``z_g``: (n_bags, G, H).

    The top tiles of gene g are those with the highest scores ``hidden @ weight[g] +
    bias[g]``; ``weight=None`` means mean pooling.
    """
    out = []
    for h in hidden:
        n = h.shape[0]
        if weight is None:
            out.append(h.mean(dim=0).expand(1, -1))
            continue
        scores = h @ weight.T + bias  # (n, G)
        order = scores.argsort(dim=0, descending=True)  # (n, G)
        mix = torch.zeros(order.shape[1], n, dtype=h.dtype, device=h.device)  # (G, n)
        for k in ks:
            kk = min(int(k), n)
            share = torch.full((order.shape[1], kk), 1.0 / kk, dtype=h.dtype, device=h.device)
            mix.scatter_add_(1, order[:kk].T, share)
        out.append((mix / len(ks)) @ h)  # (G, H)
    return torch.stack(out)


def _ridge_per_gene(Z, Y, alpha):
    """Ridge with intercept, one per gene on its own design: Z (n, G, H), Y (n, G)."""
    z_mean = Z.mean(dim=0, keepdim=True)
    y_mean = Y.mean(dim=0, keepdim=True)
    Zc = (Z - z_mean).transpose(0, 1)  # (G, n, H)
    Yc = (Y - y_mean).T.unsqueeze(-1)  # (G, n, 1)
    n = Zc.shape[1]
    K = Zc @ Zc.transpose(1, 2)  # (G, n, n) dual: cheap as n << H
    eye = torch.eye(n, dtype=Z.dtype, device=Z.device)
    coef = torch.linalg.solve(K + alpha * eye, Yc)  # (G, n, 1)
    weight = (Zc.transpose(1, 2) @ coef).squeeze(-1)  # (G, H)
    bias = y_mean.squeeze(0) - (weight * z_mean.squeeze(0)).sum(dim=1)
    return weight, bias


@torch.no_grad()
def init_output_ridge(module, bags, targets, *, alphas=RIDGE_ALPHAS, n_iter=5):
    """Set the output layer to a ridge readout under the module's own top-k pooling.

    Parameters
    ----------
    module : HE2RNAModule
    bags : sequence of bags
        The training bags.
    targets : ndarray of shape (n_bags, n_outputs)
        The (standardised) targets.
    alphas : array-like
        Penalties tried by the leave-one-out choice on mean-pooled hidden units.
    n_iter : int
        Alternations of top-tile selection and per-gene ridge.

    Returns
    -------
    alpha : float
        The penalty used.
    """
    was_training = module.training
    module.eval()
    device = module.output.weight.device
    hidden = [h.double() for h in _tile_embeddings(module, bags, device)]
    Y = torch.as_tensor(np.asarray(targets), dtype=torch.float64, device=device)
    mean_design = torch.stack([h.mean(dim=0) for h in hidden]).cpu().numpy()
    alpha = float(RidgeCV(alphas=alphas).fit(mean_design, Y.cpu().numpy()).alpha_)
    n_genes = Y.shape[1]
    weight = bias = None
    for _ in range(n_iter + 1):
        Z = _pooled_design(hidden, weight, bias, module.ks)
        if weight is None:  # mean pooling: one design shared by all genes
            Z = Z.expand(-1, n_genes, -1)
        new_weight, new_bias = _ridge_per_gene(Z, Y, alpha)
        if weight is not None and torch.allclose(new_weight, weight, rtol=1e-4, atol=1e-6):
            weight, bias = new_weight, new_bias
            break
        weight, bias = new_weight, new_bias
    module.output.weight.copy_(weight.float())
    module.output.bias.copy_(bias.float())
    module.train(was_training)
    return alpha
