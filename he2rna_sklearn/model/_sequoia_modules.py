"""Torch modules of SEQUOIA's linearized ("summary mixing") transformer.

Written from the architecture's description (Pizurica et al., Nat Commun 2024) and the
facts of its released checkpoints (gevaertlab/sequoia-pub, ``src/tformer_lin.py``, MIT):
the attribute names below are the checkpoints' state-dict names, so a released
``model.safetensors`` loads strictly into :class:`SequoiaModule`.

One summary-mixing head maps each token ``x_t`` (a super-tile) to
``GELU(c([GELU(LN_f(f(x_t))), GELU(LN_s(mean_t s(x_t)))]))``: a local branch per token and
one summary of the slide shared by all tokens, so its cost is linear in the number of
tokens. ``n_heads`` heads are concatenated and projected back to the input width; a block is
that mixing and a feed-forward layer ``Linear(GELU(Linear(LN(x))))``, each with a residual
connection. The slide embedding is the mean of the tokens after the blocks, and the head is
``Linear(LN(embedding))``. SEQUOIA adds a learnt embedding per token position
(``pos_emb1D``) before the blocks, which fixes the number of tokens (100 clusters).

Means over tokens here are over real tokens only (a ``mask``), so bags of different sizes
can share a padded batch; with every token real this is SEQUOIA's plain mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._modules import masked_mean

__all__ = ["SEQUOIA_CONFIG_KEYS", "SequoiaModule", "config_from_sequoia", "config_to_sequoia"]

#: The keys of a released checkpoint's ``config.json`` (``PyTorchModelHubMixin`` records the
#: model's ``__init__`` arguments), mapped to :class:`SequoiaModule`'s; ``device`` is ignored.
SEQUOIA_CONFIG_KEYS = {
    "num_outputs": "n_outputs",
    "input_dim": "n_features",
    "depth": "depth",
    "nheads": "n_heads",
    "dimensions_f": "local_size",
    "dimensions_s": "summary_size",
    "dimensions_c": "combine_size",
    "num_clusters": "n_positions",
}
_IGNORED_KEYS = {"device"}


def config_from_sequoia(config, source="config.json"):
    """:class:`SequoiaModule` arguments from a released checkpoint's ``config.json``.

    Raises a ``ValueError`` naming ``source`` for missing or unknown keys (an unknown key
    may change the architecture, so it is not ignored).
    """
    unknown = sorted(set(config) - set(SEQUOIA_CONFIG_KEYS) - _IGNORED_KEYS)
    required = [k for k in SEQUOIA_CONFIG_KEYS if k != "num_clusters"]
    missing = [k for k in required if k not in config]
    if unknown or missing:
        raise ValueError(
            f"{source} is not a SEQUOIA (ViS) config: "
            + (f"missing {missing}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"unknown keys {unknown}" if unknown else "")
            + f" (expected {sorted(SEQUOIA_CONFIG_KEYS)})."
        )
    out = {ours: config[theirs] for theirs, ours in SEQUOIA_CONFIG_KEYS.items() if theirs in config}
    out.setdefault("n_positions", 100)  # ViS's default
    return {k: (None if v is None else int(v)) for k, v in out.items()}


def config_to_sequoia(config):
    """The inverse of :func:`config_from_sequoia`: a released checkpoint's config keys."""
    return {theirs: config[ours] for theirs, ours in SEQUOIA_CONFIG_KEYS.items()}


class SummaryMixing(nn.Module):
    """One summary-mixing head: a local branch per token and one slide summary."""

    def __init__(self, n_features, local_size, summary_size, combine_size):
        super().__init__()
        self.local_norm = nn.LayerNorm(local_size)
        self.summary_norm = nn.LayerNorm(summary_size)
        self.s = nn.Linear(n_features, summary_size)
        self.f = nn.Linear(n_features, local_size)
        self.c = nn.Linear(summary_size + local_size, combine_size)

    def forward(self, x, mask):
        local = F.gelu(self.local_norm(self.f(x)))
        summary = F.gelu(self.summary_norm(masked_mean(self.s(x), mask)))
        summary = summary.unsqueeze(1).expand(-1, x.shape[1], -1)
        return F.gelu(self.c(torch.cat([local, summary], dim=-1)))


class MultiHeadSummary(nn.Module):
    """``n_heads`` summary-mixing heads, concatenated and projected to ``n_features``."""

    def __init__(self, n_heads, n_features, local_size, summary_size, combine_size):
        super().__init__()
        self.mixers = nn.ModuleList(
            [
                SummaryMixing(n_features, local_size, summary_size, combine_size)
                for _ in range(n_heads)
            ]
        )
        self.projection = nn.Linear(n_heads * combine_size, n_features)

    def forward(self, x, mask):
        return self.projection(torch.cat([m(x, mask) for m in self.mixers], dim=-1))


class FeedForward(nn.Module):
    """``Linear(GELU(Linear(LayerNorm(x))))``, hidden width = input width (SEQUOIA's)."""

    def __init__(self, n_features, hidden_size):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(n_features),
            nn.Linear(n_features, hidden_size),
            nn.GELU(),
            nn.Linear(hidden_size, n_features),
        )

    def forward(self, x):
        return self.net(x)


class SummaryTransformer(nn.Module):
    """``depth`` blocks of (summary mixing, feed-forward), each with a residual."""

    def __init__(self, n_features, depth, n_heads, local_size, summary_size, combine_size):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        MultiHeadSummary(
                            n_heads, n_features, local_size, summary_size, combine_size
                        ),
                        FeedForward(n_features, n_features),
                    ]
                )
                for _ in range(depth)
            ]
        )

    def forward(self, x, mask):
        for mixing, feed_forward in self.layers:
            x = mixing(x, mask) + x
            x = feed_forward(x) + x
        return x


class SequoiaModule(nn.Module):
    """SEQUOIA's linearized transformer: tokens (super-tiles) in, one vector per slide out.

    Parameters
    ----------
    n_features : int
        Token width (1024 for UNI features).
    n_outputs : int
        Genes.
    depth : int
        Blocks (SEQUOIA: 6).
    n_heads : int
        Summary-mixing heads per block (SEQUOIA: 16).
    local_size, summary_size, combine_size : int
        Widths of the local branch, the summary and each head's output (SEQUOIA: 64 each).
    n_positions : int or None
        Tokens per slide, each with a learnt position embedding (SEQUOIA: 100, and inputs
        must then have exactly that many tokens); None: no position embedding, any number
        of tokens (their order does not matter).
    standardize_input : bool, default=False
        Standardise tokens first, ``(x - input_mean) / input_scale``, with fixed buffers
        (set from training features). SEQUOIA's checkpoints take raw features and have no
        such buffers.

    Attributes
    ----------
    config : dict
        The arguments: ``SequoiaModule(**m.config)`` then ``load_state_dict`` rebuilds ``m``.
    embedding_size : int
        Width of the slide embedding (``n_features``).
    """

    def __init__(
        self,
        n_features,
        n_outputs,
        depth=6,
        n_heads=16,
        local_size=64,
        summary_size=64,
        combine_size=64,
        n_positions=100,
        standardize_input=False,
    ):
        super().__init__()
        self.config = {
            "n_features": int(n_features),
            "n_outputs": int(n_outputs),
            "depth": int(depth),
            "n_heads": int(n_heads),
            "local_size": int(local_size),
            "summary_size": int(summary_size),
            "combine_size": int(combine_size),
            "n_positions": None if n_positions is None else int(n_positions),
            "standardize_input": bool(standardize_input),
        }
        if standardize_input:
            self.register_buffer("input_mean", torch.zeros(int(n_features)))
            self.register_buffer("input_scale", torch.ones(int(n_features)))
        if n_positions is not None:
            # SEQUOIA initialises it from a standard normal; a checkpoint overwrites it.
            self.pos_emb1D = nn.Parameter(torch.randn(int(n_positions), int(n_features)))
        self.transformer = SummaryTransformer(
            n_features, depth, n_heads, local_size, summary_size, combine_size
        )
        self.linear_head = nn.Sequential(nn.LayerNorm(n_features), nn.Linear(n_features, n_outputs))
        self.embedding_size = int(n_features)

    @property
    def n_positions(self):
        return self.config["n_positions"]

    def tokens(self, X, mask):
        """Tokens after the blocks: (B, N, D) -> (B, N, D)."""
        if self.config["standardize_input"]:
            X = (X - self.input_mean) / self.input_scale
        if self.n_positions is not None:
            if X.shape[1] != self.n_positions:
                raise ValueError(
                    f"This SEQUOIA model takes exactly {self.n_positions} tokens (super-tiles) "
                    f"per slide, got a batch of {X.shape[1]}."
                )
            X = X + self.pos_emb1D
        return self.transformer(X, mask)

    def embed(self, X, mask):
        """Slide embedding: the mean over real tokens after the blocks, (B, D)."""
        return masked_mean(self.tokens(X, mask), mask)

    def forward(self, X, mask=None):
        """Slide-level outputs (B, G)."""
        if mask is None:
            mask = torch.ones(X.shape[:2], dtype=torch.bool, device=X.device)
        return self.linear_head(self.embed(X, mask))

    def tile_scores(self, X, mask=None):
        """Per-token outputs whose mean over real tokens is the slide's output: (B, N, G).

        The head is ``Linear(LayerNorm(mean_t z_t))``. The layer norm of the slide's mean
        is an affine map of the mean with the slide's statistics, so applying that same map
        (same mean and variance over features, of the slide embedding) to each token ``z_t``
        and then the linear layer gives scores that average exactly to the slide's output.
        Each token has already mixed in the slide's summary, so a score is a token's share
        of the slide's prediction, not a prediction from that token alone.
        """
        if mask is None:
            mask = torch.ones(X.shape[:2], dtype=torch.bool, device=X.device)
        z = self.tokens(X, mask)
        pooled = masked_mean(z, mask)
        norm, linear = self.linear_head
        mu = pooled.mean(dim=-1, keepdim=True).unsqueeze(1)
        var = pooled.var(dim=-1, unbiased=False, keepdim=True).unsqueeze(1)
        normed = (z - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias
        return linear(normed)
