"""Torch modules of HE2RNA: a per-tile MLP and masked top-k mean pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "KS_ALL_TILES",
    "KS_DEFAULT",
    "KS_SUPER_TILES",
    "HE2RNAModule",
    "masked_mean",
    "top_k_mean",
]

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}

#: The paper's top-k values for bags of ~100 super-tiles.
KS_SUPER_TILES = (1, 2, 5, 10, 20, 50, 100)
#: The paper's top-k values for bags of all tiles (up to 8,000 per slide). Large k act as
#: mean pooling on small bags, which suits genes that follow a tissue fraction.
KS_ALL_TILES = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
#: The regressor's default: both of the paper's sets, from one tile to thousands. A k above
#: a bag's tile count means the whole bag, so on bags of about 100 tiles (or super-tiles)
#: half of the pooling is the mean, which suits genes that follow a tissue fraction, and
#: half the mean of the top tiles, which suits genes carried by a few tiles.
KS_DEFAULT = tuple(sorted(set(KS_SUPER_TILES) | set(KS_ALL_TILES)))


def top_k_mean(scores, mask, ks):
    """Per output, the mean of the k highest scores over real tiles, averaged over ``ks``.

    Padding never enters the top-k, and k is clipped to each bag's tile count, so a bag
    smaller than k contributes the mean of all its tiles.

    Parameters
    ----------
    scores : Tensor of shape (B, N, G)
        Tile scores (padded).
    mask : Tensor of shape (B, N), bool
        True for real tiles.
    ks : sequence of int
        The k values; the result is the average of their top-k means.

    Returns
    -------
    Tensor of shape (B, G)
    """
    batch, n_tiles, n_out = scores.shape
    n_real = mask.sum(dim=1)  # (B,)
    k_max = min(max(ks), n_tiles)
    masked = scores.masked_fill(~mask.unsqueeze(-1), float("-inf"))
    top = masked.topk(k_max, dim=1, sorted=True).values  # (B, k_max, G)
    rank = torch.arange(k_max, device=scores.device)
    real = (rank.unsqueeze(0) < n_real.unsqueeze(1)).unsqueeze(-1)
    top = torch.where(real, top, torch.zeros((), dtype=top.dtype, device=top.device))
    csum = top.cumsum(dim=1)
    out = torch.zeros(batch, n_out, dtype=scores.dtype, device=scores.device)
    for k in ks:
        kb = n_real.clamp(max=int(k)).clamp(min=1)  # (B,)
        idx = (kb - 1).view(batch, 1, 1).expand(batch, 1, n_out)
        out = out + csum.gather(1, idx).squeeze(1) / kb.unsqueeze(1).to(scores.dtype)
    return out / len(ks)


def masked_mean(values, mask):
    """Mean over real tiles: (B, N, H) and (B, N) -> (B, H)."""
    weights = mask.unsqueeze(-1).to(values.dtype)
    return (values * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


class HE2RNAModule(nn.Module):
    """One MLP shared by all tiles, then per-output top-k mean pooling.

    Equivalent to the paper's stack of 1x1 Conv1d layers: ``Linear`` applied on the last
    axis of a (B, N, D) batch scores every tile independently.

    Parameters
    ----------
    n_features : int
        Tile feature dimension D.
    n_outputs : int
        Number of genes (or classes).
    hidden_layer_sizes : tuple of int
        Widths of the hidden layers, each followed by the activation and dropout.
    activation : str
        One of ``ACTIVATIONS``.
    dropout : float
        Dropout after each hidden layer.
    ks : tuple of int
        Top-k values; at inference the module averages over all of them.
    output_bias : array-like of shape (n_outputs,), optional
        Initial output bias (HE2RNA starts it at the training mean of each gene).
    input_mean, input_scale : array-like of shape (n_features,), optional
        Fixed standardisation of tile features, ``(x - mean) / scale``, applied first.

    Attributes
    ----------
    config : dict
        The architecture (``n_features``, ``n_outputs``, ``hidden_layer_sizes``,
        ``activation``, ``dropout``, ``ks``): ``HE2RNAModule(**m.config)`` followed by
        ``load_state_dict(m.state_dict())`` rebuilds ``m`` exactly.
    mean_weight : Tensor of shape (n_outputs,)
        A buffer: per output, the share of plain mean pooling mixed with the top-k pooling
        (0, the default, is HE2RNA's pooling; 1 is the mean of all tiles, which top-k
        pooling with a k above the bag's size also gives). The closed-form start of
        :class:`HE2RNARegressor` sets it per gene.
    """

    def __init__(
        self,
        n_features,
        n_outputs,
        hidden_layer_sizes=(256, 256),
        activation="relu",
        dropout=0.25,
        ks=KS_SUPER_TILES,
        output_bias=None,
        input_mean=None,
        input_scale=None,
    ):
        super().__init__()
        self.config = {
            "n_features": int(n_features),
            "n_outputs": int(n_outputs),
            "hidden_layer_sizes": tuple(int(h) for h in hidden_layer_sizes),
            "activation": str(activation),
            "dropout": float(dropout),
            "ks": tuple(int(k) for k in ks),
        }
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}."
            )
        mean = torch.zeros(n_features) if input_mean is None else torch.as_tensor(input_mean)
        scale = torch.ones(n_features) if input_scale is None else torch.as_tensor(input_scale)
        self.register_buffer("input_mean", mean.to(torch.float32).clone())
        self.register_buffer("input_scale", scale.to(torch.float32).clone())
        self.register_buffer("mean_weight", torch.zeros(int(n_outputs)))
        layers = []
        width = n_features
        for size in hidden_layer_sizes:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            width = size
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(width, n_outputs)
        self.embedding_size = width
        self.ks = tuple(int(k) for k in ks)
        if output_bias is not None:
            with torch.no_grad():
                self.output.bias.copy_(torch.as_tensor(output_bias, dtype=torch.float32))

    def _standardized_linear(self, layer, X):
        """``layer((X - mean) / scale)`` with the standardisation folded into the weights.

        Folding avoids materialising a standardised copy of the (large) input batch.
        """
        weight = layer.weight / self.input_scale
        bias = layer.bias - weight @ self.input_mean
        return F.linear(X, weight, bias)

    def tile_embeddings(self, X):
        """Last hidden layer of every tile: (B, N, D) -> (B, N, H)."""
        if len(self.hidden) == 0:
            return (X - self.input_mean) / self.input_scale
        return self.hidden[1:](self._standardized_linear(self.hidden[0], X))

    def tile_scores(self, X):
        """Score of every tile for every output: (B, N, D) -> (B, N, G)."""
        if len(self.hidden) == 0:
            return self._standardized_linear(self.output, X)
        return self.output(self.tile_embeddings(X))

    def embed(self, X, mask):
        """Slide embedding: the mean over real tiles of the last hidden layer."""
        return masked_mean(self.tile_embeddings(X), mask)

    def forward(self, X, mask, k=None):
        """Slide-level outputs (B, G): top-k mean for one ``k``, or averaged over ``ks``.

        Outputs with a ``mean_weight`` mix in that share of the mean over all tiles; the
        top-k means are only computed for the outputs that use them.
        """
        ks = self.ks if k is None else (int(k),)
        scores = self.tile_scores(X)
        weight = self.mean_weight
        if not bool((weight > 0).any()):
            return top_k_mean(scores, mask, ks)
        out = masked_mean(scores, mask)
        cols = torch.nonzero(weight < 1).squeeze(1)
        if cols.numel() == 0:
            return out
        w = weight[cols]
        mixed = w * out[:, cols] + (1 - w) * top_k_mean(scores[..., cols], mask, ks)
        return out.index_copy(1, cols, mixed)
