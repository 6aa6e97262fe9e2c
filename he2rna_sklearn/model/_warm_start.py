"""Closed-form warm start of the HE2RNA network: start where a ridge regression ends.

A linear tile scorer with mean pooling is exactly a linear model of the mean-pooled
features, so the ridge regression on mean-pooled features lies inside HE2RNA's family. On
cohorts of tens to hundreds of slides, Adam from a random start does not get there: with a
few steps per epoch its weights move by about ``lr`` per step, and its predictions stay
shrunk to the training mean. The warm start builds that ridge regression inside the
network before the first step:

* the input standardisation uses the mean and standard deviation of the slides' mean
  features (as ``StandardScaler`` on mean-pooled features does), so that the mean over a
  slide's tiles of the standardised features is the baseline's design row;
* the first hidden layer holds the leading principal directions ``p`` of those slide
  rows as +/- pairs, ``ReLU(p.z)`` and ``ReLU(-p.z)``, whose difference is the projection
  ``p.z``: with as many directions as training slides, the projections keep everything a
  ridge regression on the slide rows can use (its solution lies in their span); further
  hidden layers start as the identity on those units;
* the output layer is a ridge regression on those projections with weights ``+v`` and
  ``-v`` on the two halves of each pair, so every tile's score is linear in its features.
  With mean pooling this is exactly the ridge regression on standardised mean-pooled
  features, penalty chosen by leave-one-out cross-validation (``RidgeCV``). Under top-k
  pooling the pooled output of gene g, for a fixed choice of its top tiles, is still
  linear, ``v_g . u_g + b_g``, where ``u_g`` averages over ks the mean projection of gene
  g's top-k tiles: the readout alternates one ridge regression per gene on its ``u_g``
  (in the dual, batched over genes) and a new choice of each gene's top tiles, starting
  from mean pooling;
* per gene, an inner cross-validation on the training slides chooses between the two
  readouts: top-k pooling is kept only where its error is at least 10% below mean
  pooling's (``module.mean_weight`` records the choice), so that genes that follow a
  tissue fraction keep the ridge solution.

Training then refines all layers by gradient descent, top-k pooling included.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from torch import nn

__all__ = ["RIDGE_ALPHAS", "warm_start"]

#: Ridge penalties tried by the closed-form readout (leave-one-out CV picks one).
RIDGE_ALPHAS = np.logspace(-2, 5, 15)

_PIECEWISE_LINEAR = (nn.ReLU, nn.LeakyReLU)
#: Genes solved together in the readout, so memory stays bounded on wide targets.
_GENE_BLOCK = 512


def _slide_means(bags):
    return np.stack([np.asarray(b, dtype=np.float64).mean(axis=0) for b in bags])


def _keeps_linear_information(module):
    """Whether +/- pairs pass the hidden layers unchanged (piecewise-linear activations)."""
    others = [m for m in module.hidden if not isinstance(m, (nn.Linear, nn.Dropout))]
    return all(isinstance(m, _PIECEWISE_LINEAR) for m in others)


@torch.no_grad()
def _set_pairs(module, directions):
    """Hidden layers: +/- ``directions`` in the first, the identity on those units after.

    The number of pairs is bounded by the narrowest hidden layer; returns it.
    """
    linears = [m for m in module.hidden if isinstance(m, nn.Linear)]
    n_pairs = min(min(m.out_features for m in linears) // 2, directions.shape[0])
    first = linears[0]
    weight = first.weight.detach().cpu().numpy() * 0.01  # spare units: small random rows
    weight[:n_pairs] = directions[:n_pairs]
    weight[n_pairs : 2 * n_pairs] = -directions[:n_pairs]
    first.weight.copy_(torch.as_tensor(weight, device=first.weight.device))
    first.bias.zero_()
    for layer in linears[1:]:
        eye = layer.weight * 0.01  # spare units: small random rows
        eye[: 2 * n_pairs] = 0.0
        eye[: 2 * n_pairs, : 2 * n_pairs] = torch.eye(2 * n_pairs, device=eye.device)
        layer.weight.copy_(eye)
        layer.bias.zero_()
    return n_pairs


class _TileRows:
    """Per-bag tile representations ``fn(bag)`` (float64 tensors), for the readout.

    Kept in memory up to ``budget`` bytes (about 1 GB), else recomputed from the bags at
    each pass (e.g. thousands of tiles per slide read lazily from disk).
    """

    def __init__(self, bags, fn, width, budget=2**30):
        self.bags = bags
        self.fn = fn
        n_tiles = sum(b.shape[0] for b in bags)
        self.cache = [fn(b) for b in bags] if n_tiles * width * 8 <= budget else None

    def __iter__(self):
        return iter(self.cache) if self.cache is not None else map(self.fn, self.bags)


def _projector(module, directions):
    """``bag -> P z``: the tile features, standardised, projected on ``directions``."""
    device = module.output.weight.device
    mean, scale = module.input_mean.double(), module.input_scale.double()
    P = torch.as_tensor(directions, dtype=torch.float64, device=device)

    def project(bag):
        x = torch.as_tensor(np.asarray(bag), dtype=torch.float64, device=device)
        return ((x - mean) / scale) @ P.T

    return project


def _pooled(u, weight, bias, ks):
    """Per gene, the top-k-pooled projections: (G, r) for one bag's (n, r) projections."""
    n = u.shape[0]
    scores = u @ weight.T + bias  # (n, G)
    order = scores.argsort(dim=0, descending=True)
    mix = torch.zeros(order.shape[1], n, dtype=u.dtype, device=u.device)  # (G, n)
    for k in ks:
        kk = min(int(k), n)
        share = torch.full((order.shape[1], kk), 1.0 / kk, dtype=u.dtype, device=u.device)
        mix.scatter_add_(1, order[:kk].T, share)
    return (mix / len(ks)) @ u


def _ridge_per_gene(U, Y, alpha):
    """Ridge with intercept, one per gene on its own design: U (n, G, r), Y (n, G)."""
    u_mean = U.mean(dim=0, keepdim=True)
    y_mean = Y.mean(dim=0, keepdim=True)
    Uc = (U - u_mean).transpose(0, 1)  # (G, n, r)
    Yc = (Y - y_mean).T.unsqueeze(-1)  # (G, n, 1)
    n, r = Uc.shape[1], Uc.shape[2]
    if n <= r:  # dual: (G, n, n)
        gram = Uc @ Uc.transpose(1, 2)
        eye = torch.eye(n, dtype=U.dtype, device=U.device)
        weight = (Uc.transpose(1, 2) @ torch.linalg.solve(gram + alpha * eye, Yc)).squeeze(-1)
    else:  # primal: (G, r, r)
        gram = Uc.transpose(1, 2) @ Uc
        eye = torch.eye(r, dtype=U.dtype, device=U.device)
        weight = torch.linalg.solve(gram + alpha * eye, Uc.transpose(1, 2) @ Yc).squeeze(-1)
    bias = y_mean.squeeze(0) - (weight * u_mean.squeeze(0)).sum(dim=1)
    return weight, bias


class _Subset:
    """Some of a ``_TileRows``'s bags, in order (for inner cross-validation)."""

    def __init__(self, rows, index):
        self.rows, self.index = rows, np.asarray(index)
        self.bags = [rows.bags[i] for i in self.index]

    def __iter__(self):
        if self.rows.cache is not None:
            return (self.rows.cache[i] for i in self.index)
        return map(self.rows.fn, self.bags)


def _mean_readout(rows, Y, alpha):
    """Ridge on mean-pooled rows, every gene at once (one shared design)."""
    means = torch.stack([u.mean(dim=0) for u in rows])  # (n, r)
    return _ridge_per_gene(means.unsqueeze(1), Y, alpha)


def _top_k_readout(rows, Y, ks, alpha, n_iter, start):
    """Per-gene ridge under top-k pooling, alternating with the choice of top tiles,
    from the mean-pooling solution ``start``."""
    weights, biases = [], []
    for first in range(0, Y.shape[1], _GENE_BLOCK):
        block = slice(first, first + _GENE_BLOCK)
        weight, bias, y = start[0][block], start[1][block], Y[:, block]
        for _ in range(n_iter):
            U = torch.stack([_pooled(u, weight, bias, ks) for u in rows])
            new_weight, new_bias = _ridge_per_gene(U, y, alpha)
            done = torch.allclose(new_weight, weight, rtol=1e-4, atol=1e-6)
            weight, bias = new_weight, new_bias
            if done:
                break
        weights.append(weight)
        biases.append(bias)
    return torch.cat(weights), torch.cat(biases)


def _predict(rows, weight, bias, ks, top_k):
    """Pooled outputs of the linear tile scorer: top-k pooling where ``top_k``, else mean."""
    out = []
    for u in rows:
        pred = u.mean(dim=0) @ weight.T + bias
        if top_k.any():
            w, b = weight[top_k], bias[top_k]
            pred[top_k] = (_pooled(u, w, b, ks) * w).sum(dim=1) + b
        out.append(pred)
    return torch.stack(out)


def _choose_pooling(rows, Y, ks, alpha, n_iter, *, n_folds, margin, random_state):
    """Per gene, whether top-k pooling beats mean pooling in inner cross-validation.

    A gene takes top-k pooling only when its cross-validated squared error under top-k is
    at least ``margin`` (a fraction) below its error under mean pooling: the choice of top
    tiles adapts to the data, so the top-k fit looks better than it is, and most genes of
    real cohorts follow tissue fractions, for which the mean is the right pooling.
    """
    from sklearn.model_selection import KFold

    n = Y.shape[0]
    errors = torch.zeros(2, Y.shape[1], dtype=Y.dtype, device=Y.device)
    folds = KFold(n_splits=min(n_folds, n), shuffle=True, random_state=random_state)
    for fit, held in folds.split(np.zeros(n)):
        fit_rows, held_rows = _Subset(rows, fit), _Subset(rows, held)
        mean_solution = _mean_readout(fit_rows, Y[fit], alpha)
        top_solution = _top_k_readout(fit_rows, Y[fit], ks, alpha, n_iter, mean_solution)
        for j, (weight, bias, top_k) in enumerate([(*mean_solution, False), (*top_solution, True)]):
            flags = torch.full((Y.shape[1],), top_k, dtype=torch.bool, device=Y.device)
            pred = _predict(held_rows, weight, bias, ks, flags)
            errors[j] += ((pred - Y[held]) ** 2).sum(dim=0)
    return errors[1] < (1.0 - margin) * errors[0]


def _readout(rows, Y, ks, alpha, n_iter, *, select, margin, random_state):
    """The output layer: per gene, mean or top-k pooling, and its ridge weights."""
    mean_solution = _mean_readout(rows, Y, alpha)
    n_max = max(b.shape[0] for b in rows.bags)
    if min(ks) >= n_max:  # every k covers every bag: top-k pooling is the mean
        return (*mean_solution, torch.zeros(Y.shape[1], dtype=torch.bool))
    if select:
        top_k = _choose_pooling(
            rows, Y, ks, alpha, n_iter, n_folds=4, margin=margin, random_state=random_state
        )
    else:
        top_k = torch.ones(Y.shape[1], dtype=torch.bool, device=Y.device)
    weight, bias = (t.clone() for t in mean_solution)
    if top_k.any():
        start = (weight[top_k], bias[top_k])
        weight[top_k], bias[top_k] = _top_k_readout(rows, Y[:, top_k], ks, alpha, n_iter, start)
    return weight, bias, top_k


@torch.no_grad()
def warm_start(
    module,
    bags,
    targets,
    *,
    alphas=RIDGE_ALPHAS,
    n_iter=5,
    select_pooling=True,
    margin=0.1,
    random_state=0,
):
    """Put ``module`` at the ridge regression on its pooled, standardised features.

    See the module's description. With activations that do not pass +/- pairs unchanged
    (GELU, tanh), the hidden layers keep their random initialisation and only the input
    standardisation and the output layer are set, by a ridge regression on the pooled
    hidden units.

    Parameters
    ----------
    module : HE2RNAModule
    bags : sequence of bags
        The training bags.
    targets : ndarray of shape (n_bags, n_outputs)
        The (standardised) targets.
    alphas : array-like
        Penalties tried by leave-one-out cross-validation on mean-pooled features.
    n_iter : int
        Alternations of top-tile choice and per-gene ridge under top-k pooling.
    select_pooling : bool
        Choose, per gene, mean pooling or the module's top-k pooling by 4-fold
        cross-validation of this closed-form fit on ``bags`` (top-k only when its error
        is ``margin`` lower); the choice is stored in ``module.mean_weight``. False keeps
        top-k pooling for every gene.
    margin : float
        See ``select_pooling``.
    random_state : int
        Seeds the inner folds.

    Returns
    -------
    alpha : float
        The penalty used.
    """
    was_training = module.training
    module.eval()
    device = module.output.weight.device
    means = _slide_means(bags)
    centre = means.mean(axis=0)
    spread = means.std(axis=0)
    spread = np.where(spread > 1e-12 * max(1.0, np.abs(centre).max()), spread, 1.0)
    module.input_mean.copy_(torch.as_tensor(centre, dtype=torch.float32))
    module.input_scale.copy_(torch.as_tensor(spread, dtype=torch.float32))
    rows = (means - centre) / spread  # the baseline's design: standardised mean features
    Y = torch.as_tensor(np.asarray(targets), dtype=torch.float64, device=device)
    alpha = float(RidgeCV(alphas=alphas).fit(rows, Y.cpu().numpy()).alpha_)
    linears = [m for m in module.hidden if isinstance(m, nn.Linear)]
    if linears and _keeps_linear_information(module):
        _, _, vt = np.linalg.svd(rows - rows.mean(axis=0), full_matrices=False)
        n_pairs = _set_pairs(module, vt)
        directions = vt[:n_pairs]
    elif not linears:
        directions = np.eye(rows.shape[1])
    else:
        directions = None
    if directions is not None:
        rows = _TileRows(bags, _projector(module, directions), len(directions))
    else:

        def embed(bag):
            x = torch.as_tensor(np.asarray(bag, dtype=np.float32), device=device)
            return module.tile_embeddings(x).double()

        rows = _TileRows(bags, embed, module.embedding_size)
    weight, bias, top_k = _readout(
        rows,
        Y,
        module.ks,
        alpha,
        n_iter,
        select=select_pooling,
        margin=margin,
        random_state=random_state,
    )
    module.mean_weight.copy_((~top_k).float())
    if directions is not None:
        out = torch.zeros_like(module.output.weight, dtype=torch.float64)
        if linears:
            out[:, :n_pairs] = weight
            out[:, n_pairs : 2 * n_pairs] = -weight
        else:
            out[:] = weight
        weight = out
    module.output.weight.copy_(weight.float())
    module.output.bias.copy_(bias.float())
    module.train(was_training)
    return alpha
