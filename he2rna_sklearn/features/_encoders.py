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

This module is the registry only: the networks are built in :mod:`._encoder_modules`, and
published checkpoints are found and loaded in :mod:`._checkpoints`. To add an encoder, add its card
here; a new key layout also needs a converter in :mod:`._checkpoints`.

Over 450 lines: most of it is data, one card per encoder (:data:`ENCODERS`, about 220
lines, each value with its source) and the names other tools give them
(:data:`TOOL_NAMES`), with the lookups that read those tables. Registering an encoder is one
job, done in this file; splitting the cards from their names would scatter it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ENCODERS",
    "TOOL_NAMES",
    "Encoder",
    "get_encoder",
    "is_encoder_name",
    "list_encoders",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Bioptimus' own normalisation (H-optimus-0 and H-optimus-1 model cards).
HOPTIMUS_MEAN = (0.707223, 0.578729, 0.703617)
HOPTIMUS_STD = (0.211883, 0.230117, 0.177517)
POOLINGS = ("cls", "mean", "cls+mean", "avg", "attentional", "none")
#: Resampling of a card's ``Resize`` (torchvision's names).
INTERPOLATIONS = ("bilinear", "bicubic")
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
    resize : tuple (int, str), optional
        The card's ``Resize(size, interpolation)`` between the tile and the network, e.g.
        ``(448, "bilinear")``: the tile's shorter side becomes ``size`` pixels, resampled
        with antialiasing as PIL does (None: the tile is used as it is).
    center_crop : int, optional
        The card's ``CenterCrop(size)`` after the resize.
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
    resize: tuple | None = None
    center_crop: int | None = None

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"Encoder '{self.name}': pooling must be one of {POOLINGS}.")
        if self.checkpoint_layout not in LAYOUTS:
            raise ValueError(f"Encoder '{self.name}': checkpoint_layout must be one of {LAYOUTS}.")
        if self.resize is not None and (
            len(self.resize) != 2 or int(self.resize[0]) < 1 or self.resize[1] not in INTERPOLATIONS
        ):
            raise ValueError(
                f"Encoder '{self.name}': resize must be (size, interpolation) with interpolation "
                f"one of {INTERPOLATIONS}, got {self.resize!r}."
            )

    @property
    def input_size(self):
        """The side in pixels of the network's input: the tile after :attr:`resize` and
        :attr:`center_crop` (the tile size when there are neither)."""
        if self.center_crop is not None:
            return int(self.center_crop)
        if self.resize is not None:
            return int(self.resize[0])
        return self.tile_size

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
        # STAMP's "virchow" and "virchow2": the class token alone (1,280-d).
        Encoder(
            name="virchow-cls",
            architecture="vit_huge_patch14_224",
            timm_kwargs=_vit_h14_swiglu(**_COMMON),
            n_features=1280,
            pooling="cls",
            repo_id="paige-ai/Virchow",
            weight_files=("model.safetensors", "pytorch_model.bin"),
            licence="Apache-2.0",
            gated=True,
            n_prefix_tokens=1,
            url="https://huggingface.co/paige-ai/Virchow",
        ),
        Encoder(
            name="virchow2-cls",
            architecture="vit_huge_patch14_224",
            timm_kwargs=_vit_h14_swiglu(reg_tokens=4, **_COMMON),
            n_features=1280,
            pooling="cls",
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
            # The card's (and TRIDENT's, STAMP's) Resize(256, bicubic) + CenterCrop(224):
            # 256-px tiles at 20x, of which the network sees the central 224 px.
            tile_size=256,
            resize=(256, "bicubic"),
            center_crop=224,
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
            # final LayerNorm. As TRIDENT builds it: the trunk's position embeddings are on
            # the 224-px grid and interpolated at each forward pass to the 448-px input;
            # tiles of 512 px at 20x are resized to 448 (bilinear), as TITAN's features are.
            timm_kwargs=_vit_l16(init_values=1.0, **_COMMON),
            n_features=768,
            pooling="attentional",
            tile_size=512,
            resize=(448, "bilinear"),
            center_crop=448,
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
    "virchow-full": "virchow",  # STAMP's name of the card's 2,560-d embedding
}

#: Other tools' encoder names, with their meaning there (``"stamp:virchow2"``). A name
#: mapped to a string that is not a registered encoder is refused with that reason.
TOOL_NAMES = {
    # KatherLab/STAMP, preprocessing/config.py ExtractorName and extractor/*.py.
    "stamp": {
        "uni": "uni",
        "uni2": "uni2-h",
        "virchow": "virchow-cls",  # VirchowClsOnly: model(x)[:, 0]
        "virchow2": "virchow2-cls",  # Virchow2ClsOnly
        "virchow-full": "virchow",  # VirchowConcatenated: class token + mean of patches
        "h-optimus-0": "h-optimus-0",
        "h-optimus-1": "h-optimus-1",
        "gigapath": "prov-gigapath",
        "conch1_5": "conch-v1.5",
        "conch": "CONCH v1 (512-d) is not registered here",
        "ctranspath": "CTransPath is not registered here",
        "chief-ctranspath": "CHIEF's CTransPath is not registered here",
    },
    # mahmoodlab/TRIDENT, patch_encoder_models/load.py encoder_registry.
    "trident": {
        "uni_v1": "uni",
        "uni_v2": "uni2-h",
        "conch_v15": "conch-v1.5",
        "virchow": "virchow",  # class token + mean of patch tokens (return_cls=False)
        "virchow2": "virchow2",
        "hoptimus0": "h-optimus-0",
        "hoptimus1": "h-optimus-1",
        "phikon": "phikon",
        "phikon_v2": "phikon-v2",
        "gigapath": "prov-gigapath",
        "resnet50": (
            "TRIDENT's resnet50 is truncated after the third stage (1,024 features), not the "
            "paper's 2,048-feature network registered here as 'resnet50'"
        ),
        "conch_v1": "CONCH v1 (512-d) is not registered here",
    },
}


def normalize_name(name):
    """A name without case, separators or spaces: ``"conch_v1_5"``, ``"conch-v1.5"`` and
    ``"CONCH v1.5"`` are ``"conchv15"``; ``"h_optimus_0"`` and ``"hoptimus0"`` are one."""
    return re.sub(r"[\s_.\-]+", "", str(name).lower())


def _index(names):
    """``{normalized: target}`` of ``{name: target}``, refusing two names that collide."""
    out = {}
    for name, target in names.items():
        key = normalize_name(name)
        if out.get(key, target) != target:  # pragma: no cover - guards the tables
            raise RuntimeError(f"Encoder names {name!r} and another both normalize to {key!r}.")
        out[key] = target
    return out


#: Registered names and aliases, normalized: the encoder's name.
_NAMES = _index({**{n: n for n in ENCODERS}, **_ALIASES})
_TOOL_INDEX = {tool: _index(names) for tool, names in TOOL_NAMES.items()}


def did_you_mean(name, candidates, *, n=3):
    """`` Did you mean 'a' or 'b'?`` for the candidates closest to ``name`` (difflib, on
    normalized names), or an empty string. ``candidates``: names, or ``{name: shown}``
    (aliases shown as the name they stand for)."""
    import difflib

    if not isinstance(candidates, dict):
        candidates = {c: c for c in candidates}
    by_key = {}
    for candidate, shown in candidates.items():
        by_key.setdefault(normalize_name(candidate), shown)
    close = difflib.get_close_matches(normalize_name(name), list(by_key), n=2 * n, cutoff=0.6)
    shown = list(dict.fromkeys(by_key[c] for c in close))[:n]
    if not shown:
        return ""
    return " Did you mean " + " or ".join(f"'{c}'" for c in shown) + "?"


def encoder_names():
    """``{name or alias: registered name}``, for suggestions."""
    return {**{n: n for n in ENCODERS}, **_ALIASES}


def _tool_encoder(tool, name, original):
    names = TOOL_NAMES[tool]
    target = _TOOL_INDEX[tool].get(normalize_name(name))
    if target is None:
        hint = did_you_mean(name, [f"{tool}:{n}" for n in names])
        raise KeyError(
            f"'{original}' is not one of {tool.upper()}'s encoder names known here.{hint} "
            f"Known: {sorted(names)}."
        )
    if target not in ENCODERS:
        raise KeyError(
            f"'{original}': {target}. Registered encoders: {sorted(ENCODERS)}; pass another "
            "model as a torch.nn.Module (wrapped in TileEncoder)."
        )
    return ENCODERS[target]


def get_encoder(name):
    """The registered :class:`Encoder` called ``name``.

    Accepts the short names of :data:`ENCODERS`, common aliases (TRIDENT's and STAMP's
    where they mean what they mean here, e.g. ``"uni_v1"``, ``"hoptimus0"``,
    ``"conch_v15"``, ``"virchow-full"``), another tool's name with its meaning there
    (``"stamp:virchow2"`` is STAMP's 1,280-d class token; see ``TOOL_NAMES``), and Hugging
    Face names (``"hf-hub:MahmoodLab/UNI"``, the card's embedding). Names are compared
    without case, spaces, ``-``, ``_`` or ``.`` (:func:`normalize_name`): ``"conch_v1_5"``
    is ``"conch-v1.5"``.

    Raises
    ------
    KeyError
        For a name that is not registered, with the closest registered names.
    ValueError
        For a ``hf-hub:`` repository that is not registered.

    Examples
    --------
    >>> from he2rna_sklearn.features import get_encoder
    >>> enc = get_encoder("hf-hub:MahmoodLab/UNI")
    >>> enc.name, enc.n_features, enc.pooling
    ('uni', 1024, 'cls')
    >>> get_encoder("stamp:virchow2").n_features, get_encoder("virchow2").n_features
    (1280, 2560)
    >>> get_encoder("conch_v1_5").name, get_encoder("H_Optimus_0").name
    ('conch-v1.5', 'h-optimus-0')
    """
    if isinstance(name, Encoder):
        return name
    key = str(name).strip()
    hub = re.match(r"^hf[-_]hub:(.+)$", key, flags=re.IGNORECASE)
    if hub:
        repo = hub.group(1).split("@")[0].lower()
        repos = {}
        for enc in ENCODERS.values():  # the first one: the card's embedding
            if enc.repo_id:
                repos.setdefault(enc.repo_id.lower(), enc)
        if repo in repos:
            return repos[repo]
        known = sorted("hf-hub:" + e.repo_id for e in repos.values())
        hint = did_you_mean(f"hf-hub:{repo}", known)
        raise ValueError(
            f"'{name}' is not a registered encoder repository.{hint} Known: {known}. For "
            "another model, build it yourself and pass it as a torch.nn.Module (wrapped in "
            "TileEncoder to state its normalisation and pooling)."
        )
    tool, sep, rest = key.partition(":")
    if sep and tool.lower() in TOOL_NAMES:
        return _tool_encoder(tool.lower(), rest.strip(), name)
    target = _NAMES.get(normalize_name(key))
    if target is not None:
        return ENCODERS[target]
    hint = did_you_mean(key, encoder_names())
    raise KeyError(f"No registered encoder '{name}'.{hint} Known: {sorted(ENCODERS)}.")


def is_encoder_name(name):
    """Whether ``name`` names a registered encoder (short name, alias, ``hf-hub:`` or
    ``stamp:``/``trident:`` name), compared as :func:`get_encoder` does."""
    if isinstance(name, Encoder):
        return True
    if not isinstance(name, str):
        return False
    if re.match(r"^hf[-_]hub:", name, flags=re.IGNORECASE):
        return True
    tool, sep, _ = name.partition(":")
    if sep and tool.lower() in TOOL_NAMES:
        return True
    return normalize_name(name.strip()) in _NAMES


def list_encoders():
    """The registered encoders as a table, one row each.

    Returns
    -------
    table : pandas.DataFrame
        Indexed by name: ``n_features``, ``pooling``, ``tile_size``, ``mpp``,
        ``input_size`` (the network's input, after the card's resize and crop),
        ``licence``, ``gated``, ``repo_id``, ``architecture``.

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
            "input_size": e.input_size,
            "licence": e.licence,
            "gated": e.gated,
            "repo_id": e.repo_id or "",
            "architecture": e.architecture,
        }
        for e in ENCODERS.values()
    ]
    return pd.DataFrame(rows).set_index("name")
