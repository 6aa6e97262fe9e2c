"""The tile-type network: soft tile types shared by all genes, then a low-rank readout.

A tumour's bulk expression mixes the expression of its tissue types (tumour, stroma,
lymphocytes...) in proportion to how much of each the slide holds. The tile-type network
follows that: one layer shared by all tiles gives every tile a soft membership in
``n_types`` tile types (a softmax over codewords: ``softmax((2 c_k . z - |c_k|^2) / tau)``
for standardised features ``z``, a soft k-means assignment), the memberships are averaged
over the slide's tiles (the slide's type fractions), and every gene is read out, in
square-root units, from a few factors of those fractions:

``y_hat = V (U sqrt(mean_t a_t)) + b``, with ``U`` (rank x n_types) and ``V``
(n_genes x rank).

The square root stabilises the variance of small fractions, and on log-expression
targets a gene carried by one tissue type grows with the log of its fraction rather than
with the fraction itself (``benchmarks/fidelity.py`` measures the difference). A tile's
score for a gene is the prediction for a slide made only of tiles like it,
``V U sqrt(a_t) + b``: the virtual spatialization.

The closed-form start (:func:`codebook_solution`) puts the network at a k-means codebook
of the training tiles and a reduced-rank ridge readout of the pooled memberships, the
penalty and the rank chosen by inner cross-validation by patient; gradient descent then
refines the codebook and the readout together.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bags import SQRT_EPS, TileCodebook
from ._linear import select_reduced_rank
from ._modules import masked_mean

__all__ = [
    "TYPE_ALPHAS",
    "TYPE_RANKS",
    "TileTypeModule",
    "codebook_solution",
    "set_solution",
]

#: Ranks of the readout tried by the closed-form start's inner cross-validation.
TYPE_RANKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
#: Penalties of the readout tried by the start, relative to the mean squared norm of the
#: centred rows of the pooled memberships (so they do not depend on ``n_types``).
TYPE_ALPHAS = tuple(np.logspace(-2, 3, 11))


class TileTypeModule(nn.Module):
    """Soft tile types, mean pooling, square root, low-rank readout.

    Parameters
    ----------
    n_features : int
        Tile feature dimension.
    n_outputs : int
        Genes.
    n_types : int
        Tile types (codewords).
    rank : int
        Width of the readout's factor layer (the slide embedding).
    link : {"sqrt", "identity"}
        The pooled fractions are read in square-root units (default) or as they are
        (then a tile's score pools to the slide's by the mean, as in a linear model).
    output_bias : array-like of shape (n_outputs,), optional
    input_mean, input_scale : array-like of shape (n_features,), optional
        Fixed standardisation of tile features, applied first.

    Attributes
    ----------
    config : dict
        ``TileTypeModule(**m.config)`` and ``load_state_dict`` rebuild the module.
    ks : tuple
        Empty: this network pools by the mean, never by top-k.
    embedding_size : int
        ``rank``.
    """

    def __init__(
        self,
        n_features,
        n_outputs,
        n_types=128,
        rank=8,
        link="sqrt",
        output_bias=None,
        input_mean=None,
        input_scale=None,
    ):
        super().__init__()
        self.config = {
            "n_features": int(n_features),
            "n_outputs": int(n_outputs),
            "n_types": int(n_types),
            "rank": int(rank),
            "link": str(link),
        }
        if link not in ("sqrt", "identity"):
            raise ValueError(f"link must be 'sqrt' or 'identity', got {link!r}.")
        mean = torch.zeros(n_features) if input_mean is None else torch.as_tensor(input_mean)
        scale = torch.ones(n_features) if input_scale is None else torch.as_tensor(input_scale)
        self.register_buffer("input_mean", mean.to(torch.float32).clone())
        self.register_buffer("input_scale", scale.to(torch.float32).clone())
        self.types = nn.Linear(int(n_features), int(n_types))
        self.factors = nn.Linear(int(n_types), int(rank), bias=False)
        self.output = nn.Linear(int(rank), int(n_outputs))
        self.embedding_size = int(rank)
        self.ks = ()
        if output_bias is not None:
            with torch.no_grad():
                self.output.bias.copy_(torch.as_tensor(output_bias, dtype=torch.float32))

    def memberships(self, X):
        """Soft tile types of every tile: (B, N, D) -> (B, N, n_types), rows summing to 1."""
        weight = self.types.weight / self.input_scale
        bias = self.types.bias - weight @ self.input_mean
        return torch.softmax(F.linear(X, weight, bias), dim=-1)

    def _read(self, fractions):
        if self.config["link"] == "identity":
            return self.factors(fractions)
        return self.factors(torch.sqrt(fractions + SQRT_EPS))

    def tile_embeddings(self, X):
        """The factors of every tile taken alone: (B, N, D) -> (B, N, rank)."""
        return self._read(self.memberships(X))

    def tile_scores(self, X):
        """Per tile, the prediction for a slide made only of tiles like it: (B, N, G)."""
        return self.output(self.tile_embeddings(X))

    def embed(self, X, mask):
        """Slide embedding: the readout's factors of the slide's type fractions (B, rank)."""
        return self._read(masked_mean(self.memberships(X), mask))

    def forward(self, X, mask, k=None):
        """Slide-level outputs (B, G); ``k`` is ignored (mean pooling)."""
        return self.output(self.embed(X, mask))

    def readout_weight(self):
        """The readout's (n_outputs, n_types) weights, ``V U`` (penalised in training)."""
        return self.output.weight @ self.factors.weight


def codebook_solution(
    bags,
    targets,
    groups,
    *,
    n_types,
    temperature,
    rank="auto",
    link="sqrt",
    max_tiles=50_000,
    random_state=0,
):
    """The closed-form start of :class:`TileTypeModule` on ``bags`` and ``targets``.

    1. Standardise tile features (mean and SD over up to ``max_tiles`` tiles, drawn evenly
       from the bags) and run k-means with ``n_types`` clusters on them.
    2. Soft memberships ``softmax(-|z - c_k|^2 / tau)``, with ``tau = temperature`` times
       the mean squared distance of the tiles to their nearest codeword.
    3. A reduced-rank ridge of the targets on the square root of each slide's mean
       memberships (``link="sqrt"``; the means themselves with ``"identity"``), the
       penalty and the rank (or ``rank``) chosen by an inner 5-fold cross-validation, by
       patient when ``groups`` are given.

    Returns
    -------
    solution : dict
        ``input_mean``, ``input_scale`` (n_features,), ``types_weight`` (n_types,
        n_features), ``types_bias`` (n_types,), ``factors`` (rank, n_types), ``output``
        (n_outputs, rank), ``output_bias`` (n_outputs,), ``rank``, ``alpha`` (the
        absolute penalty) and ``spread`` (mean squared distance of the tiles to their
        nearest codeword).
    """
    rng = np.random.default_rng(random_state)
    n_tiles = sum(b.shape[0] for b in bags)
    if n_tiles < n_types:
        raise ValueError(
            f"tile_types={n_types} needs at least as many training tiles, but the training "
            f"bags hold {n_tiles}; lower tile_types."
        )
    codebook = TileCodebook(
        n_types,
        temperature=temperature,
        link=link,
        max_tiles=max_tiles,
        random_state=int(rng.integers(2**31 - 1)),
    ).fit(bags)
    weight, bias = codebook.logit_weights()
    design = codebook.transform(bags)
    centred = design - design.mean(axis=0)
    level = float((centred**2).sum()) / len(design)
    max_rank = max(1, min(n_types, len(design) - 1, targets.shape[1]))
    if rank == "auto":
        ranks = [r for r in TYPE_RANKS if r <= max_rank] or [max_rank]
    else:
        ranks = [min(int(rank), max_rank)]
    choice = select_reduced_rank(
        design,
        targets,
        groups,
        families=("rrr",),
        alphas=[a * max(level, 1e-12) for a in TYPE_ALPHAS],
        ranks=ranks,
        random_state=int(rng.integers(2**31 - 1)),
    )
    coef = choice["coef"]  # (n_types, n_outputs)
    left, sing, right = np.linalg.svd(coef, full_matrices=False)
    r = choice["rank"]
    return {
        "input_mean": codebook.mean_.astype(np.float32),
        "input_scale": codebook.scale_.astype(np.float32),
        "types_weight": weight.astype(np.float32),
        "types_bias": bias.astype(np.float32),
        "factors": (left[:, :r] * sing[:r]).T.astype(np.float32),
        "output": right[:r].T.astype(np.float32),
        "output_bias": choice["intercept"].astype(np.float32),
        "rank": int(r),
        "alpha": float(choice["alpha"]),
        "spread": codebook.spread_,
    }


@torch.no_grad()
def set_solution(module, solution):
    """Copy a :func:`codebook_solution` into ``module`` (built with its rank)."""
    device = module.output.weight.device

    def put(param, value):
        param.copy_(torch.as_tensor(value, dtype=param.dtype, device=device))

    put(module.input_mean, solution["input_mean"])
    put(module.input_scale, solution["input_scale"])
    put(module.types.weight, solution["types_weight"])
    put(module.types.bias, solution["types_bias"])
    put(module.factors.weight, solution["factors"])
    put(module.output.weight, solution["output"])
    put(module.output.bias, solution["output_bias"])
