"""The networks of registered encoders, and :class:`TileEncoder` for any other module.

:func:`build_encoder_module` builds an encoder's network from its card (timm
architecture and arguments, token pooling) with random weights; :mod:`._checkpoints`
loads its published weights into it.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from ._encoders import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "InputTransform",
    "TileEncoder",
    "build_encoder_module",
    "interpolate_pos_embed",
    "pool_output",
]


class TileEncoder(nn.Module):
    """A tile encoder that states its input normalisation and output pooling.

    Wrap any ``torch.nn.Module`` whose output is a feature map ``(B, C, h, w)``, a token
    sequence ``(B, N, D)`` or a vector ``(B, D)``, to say how tiles must be normalised and
    how its output becomes one vector per tile. :func:`build_backbone` and
    :class:`~he2rna_sklearn.SlideFeaturizer` then use these instead of the ImageNet
    defaults.

    Parameters
    ----------
    module : torch.nn.Module
        Maps normalised ``(B, 3, H, W)`` tiles to features or tokens.
    mean, std : tuple of 3 floats
        Per-channel normalisation of inputs scaled to [0, 1].
    pooling : {"auto", "cls", "mean", "cls+mean", "avg", "none"}, default="auto"
        ``"cls"``: the first token; ``"mean"``: the mean of the tokens after the first
        ``n_prefix_tokens``; ``"cls+mean"``: both concatenated (Virchow's choice);
        ``"avg"``: the spatial mean of a feature map; ``"none"``: the output is already
        ``(B, D)``. ``"auto"`` takes the spatial mean of 4-D outputs and the class token of
        3-D ones.
    n_prefix_tokens : int, default=1
        Class and register tokens before the patch tokens.
    name : str, optional
        Recorded in feature files (default: the wrapped module's class name).

    Examples
    --------
    >>> import torch
    >>> from he2rna_sklearn.features import TileEncoder, build_backbone
    >>> class Tokens(torch.nn.Module):
    ...     def forward(self, x):  # (B, 1 + 4, 8): a class token and 4 patch tokens
    ...         return x.flatten(1)[:, :40].reshape(len(x), 5, 8)
    >>> enc = TileEncoder(Tokens(), mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2),
    ...                   pooling="cls+mean")
    >>> enc(torch.zeros(2, 3, 4, 4)).shape
    torch.Size([2, 16])
    >>> build_backbone(enc, None).mean
    (0.5, 0.5, 0.5)
    """

    def __init__(
        self,
        module,
        *,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        pooling="auto",
        n_prefix_tokens=1,
        name=None,
    ):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"TileEncoder wraps a torch.nn.Module, got {type(module).__name__}.")
        if pooling not in ("auto", "cls", "mean", "cls+mean", "avg", "none"):
            raise ValueError(
                "pooling must be 'auto', 'cls', 'mean', 'cls+mean', 'avg' or 'none', got "
                f"{pooling!r}."
            )
        self.module = module
        self.mean = _check_stats(mean, "mean")
        self.std = _check_stats(std, "std")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}.")
        self.pooling = pooling
        self.n_prefix_tokens = int(n_prefix_tokens)
        self.name = name or type(module).__name__

    def forward(self, x):
        return pool_output(self.module(x), self.pooling, self.n_prefix_tokens)


def _check_stats(values, what):
    values = tuple(float(v) for v in values)
    if len(values) != 3:
        raise ValueError(f"{what} must have 3 values (R, G, B), got {values}.")
    return values


def pool_output(out, pooling, n_prefix_tokens=1):
    """One vector per tile from a module's output (see :class:`TileEncoder`)."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    if pooling == "auto":
        pooling = {4: "avg", 3: "cls", 2: "none"}.get(out.ndim)
        if pooling is None:
            raise ValueError(f"Cannot pool an output of shape {tuple(out.shape)}.")
    if pooling == "none":
        if out.ndim != 2:
            raise ValueError(f"pooling='none' needs (B, D) outputs, got {tuple(out.shape)}.")
        return out
    if pooling == "avg":
        if out.ndim != 4:
            raise ValueError(f"pooling='avg' needs (B, C, h, w) outputs, got {tuple(out.shape)}.")
        return out.mean(dim=(2, 3))
    if out.ndim != 3:
        raise ValueError(f"pooling={pooling!r} needs (B, N, D) tokens, got {tuple(out.shape)}.")
    if out.shape[1] <= n_prefix_tokens and pooling != "cls":
        raise ValueError(
            f"{out.shape[1]} tokens leave no patch token after {n_prefix_tokens} prefix tokens."
        )
    if pooling == "cls":
        return out[:, 0]
    patches = out[:, n_prefix_tokens:].mean(dim=1)
    if pooling == "mean":
        return patches
    return torch.cat([out[:, 0], patches], dim=-1)


class _AttentionalPool(nn.Module):
    """Cross-attention from learned queries to the tokens (CoCa/CONCH style pooler).

    Key names (``query``, ``ln_q``, ``ln_k``, ``to_q``, ``to_kv``, ``to_out``) follow the
    published CONCH v1.5 checkpoint.
    """

    def __init__(self, dim, context_dim, n_heads=8, n_queries=1):
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Parameter(torch.randn(n_queries, dim))
        self.ln_q = nn.LayerNorm(dim)
        self.ln_k = nn.LayerNorm(context_dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)

    def forward(self, x):
        b, n, _ = x.shape
        h = self.n_heads
        k, v = self.to_kv(self.ln_k(x)).chunk(2, dim=-1)
        q = self.to_q(self.ln_q(self.query)).unsqueeze(0).expand(b, -1, -1)

        def heads(t):
            return t.reshape(b, t.shape[1], h, -1).transpose(1, 2)

        out = nn.functional.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        out = out.transpose(1, 2).reshape(b, q.shape[1], -1)
        return self.to_out(out)


class _PooledViT(nn.Module):
    """A timm ViT ``trunk`` whose tokens are pooled as the encoder's card says."""

    def __init__(self, trunk, pooling, n_prefix_tokens):
        super().__init__()
        self.trunk = trunk
        self.pooling = pooling
        self.n_prefix_tokens = n_prefix_tokens

    def forward(self, x):
        return pool_output(self.trunk.forward_features(x), self.pooling, self.n_prefix_tokens)


def interpolate_pos_embed(pos_embed, rows, cols):
    """Position embeddings (one class token, then a square grid) for a ``rows x cols`` grid
    of patches, as DINO and iBOT interpolate them at each forward pass (and CONCH v1.5 in
    TRIDENT and TITAN): bicubic, with a scale factor of ``(rows + 0.1) / side``, unchanged
    on a square grid of the same side."""
    n = pos_embed.shape[1] - 1
    side = int(round(n**0.5))
    if side * side != n:
        raise ValueError(f"{n} position embeddings do not make a square grid.")
    if rows == cols == side:
        return pos_embed
    grid = pos_embed[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = nn.functional.interpolate(
        grid, scale_factor=((rows + 0.1) / side, (cols + 0.1) / side), mode="bicubic"
    )
    if tuple(grid.shape[-2:]) != (rows, cols):  # pragma: no cover - guards rounding
        raise RuntimeError(f"Interpolated a {tuple(grid.shape[-2:])} grid, not {(rows, cols)}.")
    grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], grid], dim=1)


class _ConchVisionTower(nn.Module):
    """CONCH v1.5's vision tower: ViT-L/16 trunk, attentional pooler, LayerNorm (768-d).

    As TRIDENT builds it: the trunk keeps its position embeddings on its own grid (224 px)
    and interpolates them to the input's grid at each forward pass
    (:func:`interpolate_pos_embed`), instead of timm's resampling.
    """

    def __init__(self, trunk, dim=768, n_heads=8):
        super().__init__()
        self.trunk = trunk
        self.attn_pool_contrast = _AttentionalPool(dim, trunk.embed_dim, n_heads, n_queries=1)
        self.ln_contrast = nn.LayerNorm(dim)

    def forward_features(self, x):
        t = self.trunk
        tokens = t.patch_embed(x)
        if tokens.ndim == 4:  # (B, rows, cols, D): timm's dynamic_img_size layout
            b, rows, cols, d = tokens.shape
            tokens = tokens.reshape(b, rows * cols, d)
        else:
            rows, cols = t.patch_embed.grid_size
        pos = interpolate_pos_embed(t.pos_embed, rows, cols)
        tokens = torch.cat([t.cls_token.expand(len(tokens), -1, -1), tokens], dim=1) + pos
        tokens = t.norm_pre(t.patch_drop(t.pos_drop(tokens)))
        return t.norm(t.blocks(tokens))

    def forward(self, x):
        return self.ln_contrast(self.attn_pool_contrast(self.forward_features(x))[:, 0])


class InputTransform:
    """The card's ``Resize`` and ``CenterCrop`` between a tile and the network, on uint8
    ``(B, 3, H, W)`` tiles before normalisation, antialiased as PIL resizes images.

    Parameters
    ----------
    resize : int, optional
        The shorter side after resizing (unchanged tiles already of that side).
    interpolation : {"bilinear", "bicubic"}
    center_crop : int, optional
        The side of the central crop after the resize.
    """

    def __init__(self, resize=None, interpolation="bilinear", center_crop=None):
        self.resize = None if resize is None else int(resize)
        self.interpolation = interpolation
        self.center_crop = None if center_crop is None else int(center_crop)

    @classmethod
    def of(cls, encoder):
        """The encoder's input transform, or None if its tiles go to the network as read."""
        if encoder.resize is None and encoder.center_crop is None:
            return None
        size, interpolation = encoder.resize if encoder.resize is not None else (None, "bilinear")
        return cls(size, interpolation, encoder.center_crop)

    def __repr__(self):
        steps = []
        if self.resize is not None:
            steps.append(f"resize={self.resize}:{self.interpolation}")
        if self.center_crop is not None:
            steps.append(f"center_crop={self.center_crop}")
        return ",".join(steps)

    def __call__(self, tiles):
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        h, w = tiles.shape[-2:]
        if self.resize is not None and min(h, w) != self.resize:
            mode = InterpolationMode(self.interpolation)
            tiles = F.resize(tiles, [self.resize], interpolation=mode, antialias=True)
        if self.center_crop is not None and tuple(tiles.shape[-2:]) != (self.center_crop,) * 2:
            if min(tiles.shape[-2:]) < self.center_crop:
                raise ValueError(
                    f"Tiles of {tuple(tiles.shape[-2:])} px are smaller than the encoder's "
                    f"{self.center_crop}-px center crop."
                )
            tiles = F.center_crop(tiles, [self.center_crop, self.center_crop])
        return tiles


def _timm_kwargs(encoder):
    import timm

    layers = {
        "swiglu_packed": timm.layers.SwiGLUPacked,
        "silu": nn.SiLU,
        "gelu": nn.GELU,
    }
    kwargs = {}
    for key, value in encoder.timm_kwargs.items():
        kwargs[key] = layers[value] if key in ("mlp_layer", "act_layer") else value
    return kwargs


def build_encoder_module(encoder, *, device=None):
    """The encoder's network with random weights, pooled to ``(B, n_features)``.

    ``device="meta"`` builds it without allocating memory (to check its shapes or to load
    a checkpoint into it with ``assign=True``). The loadable part of a ViT encoder is
    ``module.trunk`` (timm's key names), or the whole module for CONCH v1.5.
    """
    if encoder.imagenet:
        raise ValueError(f"'{encoder.name}' is built by torchvision; use build_backbone.")
    try:
        import timm
    except ImportError as exc:
        raise ImportError(
            f"Encoder '{encoder.name}' needs timm: pip install 'he2rna-sklearn[timm]'"
        ) from exc
    with torch.device(device) if device is not None else nullcontext():
        trunk = timm.create_model(encoder.architecture, pretrained=False, **_timm_kwargs(encoder))
        if encoder.pooling == "attentional":
            return _ConchVisionTower(trunk, dim=encoder.n_features)
        return _PooledViT(trunk, encoder.pooling, encoder.n_prefix_tokens)


def loadable_part(module, encoder):
    """The part of a module from :func:`build_encoder_module` that the encoder's published
    checkpoint holds: the timm ``trunk`` of a ViT, the whole module for CONCH v1.5."""
    return module if encoder.checkpoint_layout == "conch-v1.5" else module.trunk
