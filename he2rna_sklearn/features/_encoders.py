"""A registry of pathology foundation models (tile encoders), by short name.

Each :class:`Encoder` fixes everything needed to turn a tile into the features its authors
published: the architecture and its timm arguments, the input normalisation, the tile size
and resolution it was trained at, how the output tokens are pooled, the feature dimension,
and where its weights come from. Weights are read from a local checkpoint file or from the
Hugging Face cache, offline: nothing is downloaded at run time, and a missing or gated model
raises :class:`~he2rna_sklearn.exceptions.WeightsNotFoundError` saying how to get it. There is
never a fallback to random weights.

The facts (argument values, key names, means and standard deviations) come from the models'
cards and from the encoder lists of TRIDENT (mahmoodlab/TRIDENT) and STAMP (KatherLab/STAMP);
no code of theirs is used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..exceptions import WeightsNotFoundError

__all__ = ["ENCODERS", "Encoder", "TileEncoder", "get_encoder", "list_encoders"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Bioptimus' own normalisation (H-optimus-0 and H-optimus-1 model cards).
HOPTIMUS_MEAN = (0.707223, 0.578729, 0.703617)
HOPTIMUS_STD = (0.211883, 0.230117, 0.177517)
POOLINGS = ("cls", "mean", "cls+mean", "avg", "attentional", "none")
#: Key-name layouts of published checkpoints that the loader understands.
LAYOUTS = ("timm", "hf-vit", "hf-dinov2", "conch-v1.5")


@dataclass(frozen=True)
class Encoder:
    """What one pathology tile encoder is, and where its weights come from.

    Parameters
    ----------
    name : str
        Short name, as given to ``SlideFeaturizer(backbone=...)``.
    architecture : str
        The timm model name the network is built from (``"torchvision:resnet50"`` for the
        paper's CNN).
    timm_kwargs : dict
        Every architecture argument given to ``timm.create_model`` (layer classes by name:
        ``"swiglu_packed"``, ``"silu"``), so that the network does not depend on timm's
        defaults.
    n_features : int
        Dimension of one tile's feature vector.
    pooling : {"cls", "mean", "cls+mean", "avg", "attentional"}
        How the output tokens become one vector: the class token, the mean of the patch
        tokens (register tokens excluded), both concatenated, the spatial mean of a CNN's
        feature map, or CONCH's attentional pooler.
    mean, std : tuple of float
        Input normalisation per RGB channel, for inputs in [0, 1].
    tile_size : int
        Input tile side in pixels the model was trained on.
    mpp : float
        Recommended resolution in µm per pixel (0.5 is about 20x).
    repo_id : str, optional
        The Hugging Face repository of the weights (``hf-hub:<repo_id>`` names this model).
    weight_files : tuple of str
        File names of the weights in that repository, in order of preference.
    licence : str
        The weights' licence, as stated on the model card at the time of writing.
    gated : bool
        Whether the repository asks users to accept conditions before downloading.
    n_prefix_tokens : int
        Class and register tokens before the patch tokens (for mean pooling).
    checkpoint_layout : {"timm", "hf-vit", "hf-dinov2", "conch-v1.5"}
        Key names of the published checkpoint: timm's own, Hugging Face ``ViTModel`` or
        ``Dinov2Model`` ones (renamed on loading), or CONCH v1.5's vision tower (``trunk.*``,
        ``attn_pool_contrast.*``, ``ln_contrast.*``).
    url : str
        The model card.
    """

    name: str
    architecture: str
    timm_kwargs: dict = field(default_factory=dict, hash=False, compare=False)
    n_features: int = 0
    pooling: str = "cls"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    tile_size: int = 224
    mpp: float = 0.5
    repo_id: str | None = None
    weight_files: tuple = ("model.safetensors", "pytorch_model.bin")
    licence: str = ""
    gated: bool = False
    n_prefix_tokens: int = 1
    checkpoint_layout: str = "timm"
    url: str = ""

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"Encoder '{self.name}': pooling must be one of {POOLINGS}.")
        if self.checkpoint_layout not in LAYOUTS:
            raise ValueError(f"Encoder '{self.name}': checkpoint_layout must be one of {LAYOUTS}.")

    @property
    def imagenet(self):
        """Whether the published weights are ImageNet ones (the paper's ResNet50)."""
        return self.architecture.startswith("torchvision:")


def _vit_l16(**extra):
    return dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0, **extra)


def _vit_h14_swiglu(**extra):
    # Virchow / Virchow2: ViT-H/14 with SwiGLU, hidden width 1280 * 5.3375 (packed).
    return dict(
        patch_size=14,
        embed_dim=1280,
        depth=32,
        num_heads=16,
        mlp_ratio=5.3375,
        mlp_layer="swiglu_packed",
        act_layer="silu",
        init_values=1e-5,
        **extra,
    )


def _vit_g14_reg4(**extra):
    # DINOv2 ViT-g/14 with four registers (H-optimus-0 and -1).
    return dict(
        patch_size=14,
        embed_dim=1536,
        depth=40,
        num_heads=24,
        mlp_ratio=2.66667 * 2,
        mlp_layer="swiglu_packed",
        act_layer="silu",
        init_values=1e-5,
        reg_tokens=4,
        no_embed_class=True,
        **extra,
    )


_COMMON = dict(img_size=224, num_classes=0, dynamic_img_size=True)

#: The registered encoders, by short name.
ENCODERS = {
    e.name: e
    for e in [
        Encoder(
            name="resnet50",
            architecture="torchvision:resnet50",
            n_features=2048,
            pooling="avg",
            tile_size=224,
            mpp=0.5,
            weight_files=("resnet50-0676ba61.pth",),
            licence="BSD-3-Clause (torchvision)",
            gated=False,
            n_prefix_tokens=0,
            url="https://pytorch.org/vision/stable/models/generated/torchvision.models.resnet50.html",
        ),
        Encoder(
            name="uni",
            architecture="vit_large_patch16_224",
            timm_kwargs=_vit_l16(init_values=1e-5, **_COMMON),
            n_features=1024,
            pooling="cls",
            repo_id="MahmoodLab/UNI",
            weight_files=("pytorch_model.bin",),
            licence="CC-BY-NC-ND-4.0",
            gated=True,
            url="https://huggingface.co/MahmoodLab/UNI",
        ),
        Encoder(
            name="uni2-h",
            architecture="vit_giant_patch14_224",
            timm_kwargs=dict(
                patch_size=14,
                embed_dim=1536,
                depth=24,
                num_heads=24,
                mlp_ratio=2.66667 * 2,
                mlp_layer="swiglu_packed",
                act_layer="silu",
                init_values=1e-5,
                reg_tokens=8,
                no_embed_class=True,
                **_COMMON,
            ),
            n_features=1536,
            pooling="cls",
            repo_id="MahmoodLab/UNI2-h",
            weight_files=("pytorch_model.bin",),
            licence="CC-BY-NC-ND-4.0",
            gated=True,
            n_prefix_tokens=9,
            url="https://huggingface.co/MahmoodLab/UNI2-h",
        ),
        Encoder(
            name="virchow",
            architecture="vit_huge_patch14_224",
            timm_kwargs=_vit_h14_swiglu(**_COMMON),
            n_features=2560,
            pooling="cls+mean",
            repo_id="paige-ai/Virchow",
            weight_files=("model.safetensors", "pytorch_model.bin"),
            licence="Apache-2.0",
            gated=True,
            n_prefix_tokens=1,
            url="https://huggingface.co/paige-ai/Virchow",
        ),
        Encoder(
            name="virchow2",
            architecture="vit_huge_patch14_224",
            timm_kwargs=_vit_h14_swiglu(reg_tokens=4, **_COMMON),
            n_features=2560,
            pooling="cls+mean",
            repo_id="paige-ai/Virchow2",
            weight_files=("model.safetensors", "pytorch_model.bin"),
            licence="CC-BY-NC-ND-4.0",
            gated=True,
            n_prefix_tokens=5,
            url="https://huggingface.co/paige-ai/Virchow2",
        ),
        Encoder(
            name="h-optimus-0",
            architecture="vit_giant_patch14_reg4_dinov2",
            timm_kwargs=_vit_g14_reg4(**_COMMON),
            n_features=1536,
            pooling="cls",
            mean=HOPTIMUS_MEAN,
            std=HOPTIMUS_STD,
            repo_id="bioptimus/H-optimus-0",
            weight_files=("model.safetensors", "pytorch_model.bin"),
            licence="Apache-2.0",
            gated=True,
            n_prefix_tokens=5,
            url="https://huggingface.co/bioptimus/H-optimus-0",
        ),
        Encoder(
            name="h-optimus-1",
            architecture="vit_giant_patch14_reg4_dinov2",
            timm_kwargs=_vit_g14_reg4(**_COMMON),
            n_features=1536,
            pooling="cls",
            mean=HOPTIMUS_MEAN,
            std=HOPTIMUS_STD,
            repo_id="bioptimus/H-optimus-1",
            weight_files=("model.safetensors", "pytorch_model.bin"),
            licence="Bioptimus non-commercial (academic research)",
            gated=True,
            n_prefix_tokens=5,
            url="https://huggingface.co/bioptimus/H-optimus-1",
        ),
        Encoder(
            name="phikon",
            architecture="vit_base_patch16_224",
            # iBOT ViT-B/16. The published config's layer_norm_eps (1e-12) differs from the
            # timm value the model was trained with (1e-6); owkin's own fix uses 1e-6.
            timm_kwargs=dict(
                patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, **_COMMON
            ),
            n_features=768,
            pooling="cls",
            repo_id="owkin/phikon",
            weight_files=("model.safetensors", "pytorch_model.bin"),
            licence="Owkin non-commercial",
            gated=False,
            checkpoint_layout="hf-vit",
            url="https://huggingface.co/owkin/phikon",
        ),
        Encoder(
            name="phikon-v2",
            architecture="vit_large_patch16_224",
            timm_kwargs=_vit_l16(init_values=1.0, **_COMMON),
            n_features=1024,
            pooling="cls",
            repo_id="owkin/phikon-v2",
            weight_files=("model.safetensors", "pytorch_model.bin"),
            licence="Owkin non-commercial",
            gated=False,
            checkpoint_layout="hf-dinov2",
            url="https://huggingface.co/owkin/phikon-v2",
        ),
        Encoder(
            name="prov-gigapath",
            architecture="vit_giant_patch14_dinov2",
            timm_kwargs=dict(
                patch_size=16,
                embed_dim=1536,
                depth=40,
                num_heads=24,
                mlp_ratio=5.33334,
                mlp_layer="swiglu_packed",
                act_layer="silu",
                init_values=1e-5,
                **_COMMON,
            ),
            n_features=1536,
            pooling="cls",
            repo_id="prov-gigapath/prov-gigapath",
            weight_files=("pytorch_model.bin", "model.safetensors"),
            licence="Apache-2.0",
            gated=True,
            url="https://huggingface.co/prov-gigapath/prov-gigapath",
        ),
        Encoder(
            name="conch-v1.5",
            architecture="vit_large_patch16_224",
            # The vision tower of CONCH v1.5 (as shipped for TITAN): a ViT-L/16 trunk with
            # layer scale, then an attentional pooler (one query, 8 heads, 768-d) and a
            # final LayerNorm. Native input 448 px.
            timm_kwargs=_vit_l16(
                init_values=1.0, img_size=448, num_classes=0, dynamic_img_size=True
            ),
            n_features=768,
            pooling="attentional",
            tile_size=448,
            repo_id="MahmoodLab/conchv1_5",
            weight_files=("pytorch_model_vision.bin",),
            licence="CC-BY-NC-ND-4.0",
            gated=True,
            checkpoint_layout="conch-v1.5",
            url="https://huggingface.co/MahmoodLab/conchv1_5",
        ),
    ]
}

_ALIASES = {
    "uni_v1": "uni",
    "uni-v1": "uni",
    "uni2": "uni2-h",
    "uni_v2": "uni2-h",
    "hoptimus0": "h-optimus-0",
    "hoptimus1": "h-optimus-1",
    "h_optimus_0": "h-optimus-0",
    "h_optimus_1": "h-optimus-1",
    "phikon_v2": "phikon-v2",
    "gigapath": "prov-gigapath",
    "conch_v15": "conch-v1.5",
    "conchv1_5": "conch-v1.5",
    "conch1_5": "conch-v1.5",
}


def get_encoder(name):
    """The registered :class:`Encoder` called ``name``.

    Accepts the short names of :data:`ENCODERS`, common aliases (TRIDENT's and STAMP's,
    e.g. ``"uni_v1"``, ``"hoptimus0"``, ``"conch_v15"``), and Hugging Face names
    (``"hf-hub:MahmoodLab/UNI"``), all case-insensitive.

    Examples
    --------
    >>> from he2rna_sklearn.features import get_encoder
    >>> enc = get_encoder("hf-hub:MahmoodLab/UNI")
    >>> enc.name, enc.n_features, enc.pooling
    ('uni', 1024, 'cls')
    """
    if isinstance(name, Encoder):
        return name
    key = str(name).strip()
    hub = re.match(r"^hf[-_]hub:(.+)$", key, flags=re.IGNORECASE)
    if hub:
        repo = hub.group(1).split("@")[0].lower()
        for enc in ENCODERS.values():
            if enc.repo_id and enc.repo_id.lower() == repo:
                return enc
        raise ValueError(
            f"'{name}' is not a registered encoder repository. Known: "
            f"{sorted('hf-hub:' + e.repo_id for e in ENCODERS.values() if e.repo_id)}. For "
            "another model, build it yourself and pass it as a torch.nn.Module (wrapped in "
            "TileEncoder to state its normalisation and pooling)."
        )
    low = key.lower()
    low = _ALIASES.get(low, low)
    if low in ENCODERS:
        return ENCODERS[low]
    raise KeyError(f"No registered encoder '{name}'; known: {sorted(ENCODERS)}.")


def is_encoder_name(name):
    """Whether ``name`` names a registered encoder (short name, alias or ``hf-hub:``)."""
    if isinstance(name, Encoder):
        return True
    if not isinstance(name, str):
        return False
    if re.match(r"^hf[-_]hub:", name, flags=re.IGNORECASE):
        return True
    return _ALIASES.get(name.lower(), name.lower()) in ENCODERS


def list_encoders():
    """The registered encoders as a table, one row each.

    Returns
    -------
    table : pandas.DataFrame
        Indexed by name: ``n_features``, ``pooling``, ``tile_size``, ``mpp``, ``licence``,
        ``gated``, ``repo_id``, ``architecture``.

    Examples
    --------
    >>> from he2rna_sklearn.features import list_encoders
    >>> row = list_encoders().loc["virchow2"]
    >>> int(row["n_features"]), row["pooling"], row["repo_id"]
    (2560, 'cls+mean', 'paige-ai/Virchow2')
    """
    import pandas as pd

    rows = [
        {
            "name": e.name,
            "n_features": e.n_features,
            "pooling": e.pooling,
            "tile_size": e.tile_size,
            "mpp": e.mpp,
            "licence": e.licence,
            "gated": e.gated,
            "repo_id": e.repo_id or "",
            "architecture": e.architecture,
        }
        for e in ENCODERS.values()
    ]
    return pd.DataFrame(rows).set_index("name")


# -- modules --------------------------------------------------------------------------------
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


class _ConchVisionTower(nn.Module):
    """CONCH v1.5's vision tower: ViT-L/16 trunk, attentional pooler, LayerNorm (768-d)."""

    def __init__(self, trunk):
        super().__init__()
        self.trunk = trunk
        self.attn_pool_contrast = _AttentionalPool(768, trunk.embed_dim, n_heads=8, n_queries=1)
        self.ln_contrast = nn.LayerNorm(768)

    def forward(self, x):
        tokens = self.trunk.forward_features(x)
        return self.ln_contrast(self.attn_pool_contrast(tokens)[:, 0])


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
    with torch.device(device) if device is not None else _nullcontext():
        trunk = timm.create_model(encoder.architecture, pretrained=False, **_timm_kwargs(encoder))
        if encoder.pooling == "attentional":
            return _ConchVisionTower(trunk)
        return _PooledViT(trunk, encoder.pooling, encoder.n_prefix_tokens)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _loadable(module, encoder):
    return module if encoder.checkpoint_layout == "conch-v1.5" else module.trunk


# -- checkpoints ----------------------------------------------------------------------------
def _merge_qkv_hf(state, prefix, out_prefix):
    """Merge Hugging Face's separate query/key/value projections into timm's ``qkv``.

    Returns the merged tensors and the source keys used; projections that cannot be merged
    (missing or of unequal widths) are left for the strict load to report.
    """
    out, used = {}, set()
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(rf"^{prefix}(\d+)\.", k))})
    for i in layers:
        base = f"{prefix}{i}.attention.attention."
        for kind in ("weight", "bias"):
            keys = [f"{base}{p}.{kind}" for p in ("query", "key", "value")]
            parts = [state.get(k) for k in keys]
            if any(p is None for p in parts) or len({tuple(p.shape) for p in parts}) > 1:
                continue
            out[f"{out_prefix}{i}.attn.qkv.{kind}"] = torch.cat(parts, dim=0)
            used.update(keys)
    return out, used


def _hf_v5_to_v4(key, *, dinov2):
    """Hugging Face transformers >= 5 renamed ViT/DINOv2 weights; published checkpoints
    (saved with transformers 4) use the older names. Bring both to the older ones."""
    key = re.sub(
        r"\.attention\.([qkv])_proj\.",
        lambda m: (
            ".attention.attention." + {"q": "query", "k": "key", "v": "value"}[m.group(1)] + "."
        ),
        key,
    )
    key = key.replace(".attention.o_proj.", ".attention.output.dense.")
    if not dinov2:
        key = re.sub(r"^layers\.", "encoder.layer.", key)
        key = key.replace(".mlp.fc1.", ".intermediate.dense.")
        key = key.replace(".mlp.fc2.", ".output.dense.")
    return key


def _from_hf(state, *, dinov2):
    """Rename a Hugging Face ``ViTModel``/``Dinov2Model`` state dict to timm's names."""
    state = {
        _hf_v5_to_v4(re.sub(r"^(vit|dinov2)\.", "", k), dinov2=dinov2): v for k, v in state.items()
    }
    out, merged = _merge_qkv_hf(state, "encoder.layer.", "blocks.")
    rename = [
        (r"^embeddings\.cls_token$", "cls_token"),
        (r"^embeddings\.position_embeddings$", "pos_embed"),
        (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
        (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
        (r"^layernorm\.", "norm."),
    ]
    if dinov2:
        rename += [
            (r"^encoder\.layer\.(\d+)\.norm1\.", r"blocks.\1.norm1."),
            (r"^encoder\.layer\.(\d+)\.norm2\.", r"blocks.\1.norm2."),
            (r"^encoder\.layer\.(\d+)\.mlp\.fc1\.", r"blocks.\1.mlp.fc1."),
            (r"^encoder\.layer\.(\d+)\.mlp\.fc2\.", r"blocks.\1.mlp.fc2."),
            (r"^encoder\.layer\.(\d+)\.layer_scale1\.lambda1$", r"blocks.\1.ls1.gamma"),
            (r"^encoder\.layer\.(\d+)\.layer_scale2\.lambda1$", r"blocks.\1.ls2.gamma"),
        ]
        dropped = (r"^embeddings\.mask_token$",)
    else:
        rename += [
            (r"^encoder\.layer\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
            (r"^encoder\.layer\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
            (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
            (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc2."),
        ]
        dropped = (r"^pooler\.",)
    for key, value in state.items():
        if key in merged:
            continue
        if any(re.search(p, key) for p in dropped):
            continue
        for pattern, repl in rename:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new] = value
                break
        else:
            out[key] = value  # left as is: a strict load names it as unexpected
    return out


_CONVERTERS = {
    "timm": lambda state: state,
    "hf-vit": lambda state: _from_hf(state, dinov2=False),
    "hf-dinov2": lambda state: _from_hf(state, dinov2=True),
    "conch-v1.5": lambda state: state,
}


def _resample_pos_embed(state, target, key, n_prefix):
    """Resample a checkpoint's position embeddings to the model's grid when they differ."""
    if key not in state or tuple(state[key].shape) == tuple(target.shape):
        return state
    from timm.layers import resample_abs_pos_embed

    side = int(round((target.shape[1] - n_prefix) ** 0.5))
    src = state[key].float()
    if src.shape[-1] != target.shape[-1]:
        return state  # a width mismatch is reported by the strict load
    state = dict(state)
    state[key] = resample_abs_pos_embed(
        src,
        new_size=(side, side),
        num_prefix_tokens=n_prefix,
        interpolation="bicubic",
        antialias=False,
        verbose=False,
    )
    return state


def load_encoder_state(module, encoder, state, *, source="the checkpoint"):
    """Load a published checkpoint into a module from :func:`build_encoder_module`.

    Keys are renamed from the checkpoint's layout to timm's, position embeddings are
    resampled if the checkpoint was saved at another grid, and the load is strict: any
    missing or unexpected key is an error naming a few of them.
    """
    state = _CONVERTERS[encoder.checkpoint_layout](dict(state))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    target = _loadable(module, encoder)
    own = target.state_dict()
    prefix = "trunk." if encoder.checkpoint_layout == "conch-v1.5" else ""
    trunk = module.trunk
    n_prefix = 0 if getattr(trunk, "no_embed_class", False) else trunk.num_prefix_tokens
    pos_key = prefix + "pos_embed"
    if pos_key in own:
        state = _resample_pos_embed(state, own[pos_key], pos_key, n_prefix)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"Weights from {source} do not fit encoder '{encoder.name}' "
            f"({encoder.architecture}): {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), {len(wrong)} of the "
            f"wrong shape (e.g. {wrong[:2]}). Check that the file is {encoder.name}'s "
            f"published checkpoint ({encoder.url})."
        )
    target.load_state_dict(state, strict=True, assign=True)
    if not any(v.is_meta for v in state.values()):
        tensors = list(module.named_parameters()) + list(module.named_buffers())
        left = [n for n, t in tensors if t.is_meta]
        if left:  # pragma: no cover - guards against architectures with unsaved buffers
            raise RuntimeError(f"Encoder '{encoder.name}': {left[:3]} were not loaded.")
    return module


def _how_to_get(encoder):
    files = " or ".join(encoder.weight_files)
    gated = (
        f"It is gated: log in at https://huggingface.co and accept the conditions on "
        f"{encoder.url} first, then create an access token. "
        if encoder.gated
        else ""
    )
    return (
        f"{gated}On a machine with internet run `hf download {encoder.repo_id}` (or "
        f"huggingface_hub.snapshot_download('{encoder.repo_id}')) and copy the Hugging Face "
        f"cache (HF_HOME, default ~/.cache/huggingface) here, or pass the checkpoint file "
        f"({files}) as weights='/path/to/{encoder.weight_files[0]}'. Nothing is downloaded "
        "at run time, and only weights=None gives random weights."
    )


def hf_cached_weights(encoder, *, cache_dir=None):
    """The encoder's checkpoint in the Hugging Face cache, found without any network access.

    Returns
    -------
    path : pathlib.Path
    weights_id : str
        ``hf-hub:<repo>@<snapshot>/<file>``, recorded in feature files.

    Raises
    ------
    WeightsNotFoundError
        If no weight file of the encoder is in the cache, saying how to get it.
    """
    if encoder.repo_id is None:
        raise WeightsNotFoundError(f"Encoder '{encoder.name}' has no Hugging Face repository.")
    from huggingface_hub import try_to_load_from_cache

    for filename in encoder.weight_files:
        found = try_to_load_from_cache(encoder.repo_id, filename, cache_dir=cache_dir)
        if isinstance(found, (str, os.PathLike)) and Path(found).is_file():
            path = Path(found)
            snapshot = path.parent.name
            return path, f"hf-hub:{encoder.repo_id}@{snapshot[:12]}/{filename}"
    from huggingface_hub import constants

    where = cache_dir or constants.HF_HUB_CACHE
    raise WeightsNotFoundError(
        f"The weights of encoder '{encoder.name}' ({encoder.repo_id}: "
        f"{', '.join(encoder.weight_files)}) are not in the Hugging Face cache '{where}'. "
        + _how_to_get(encoder)
    )
