"""Backbones that map an RGB tile to a feature vector, and how their weights load.

A backbone is a torchvision or timm model, a registered pathology encoder (see
:mod:`._encoders`: UNI, Virchow2, H-optimus, ...), or any ``torch.nn.Module``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._hub import split_revision
from ..exceptions import WeightsNotFoundError
from ._checkpoints import (
    WEIGHT_SUFFIXES,
    file_weights_id,
    find_encoder_weights,
    load_encoder_state,
)
from ._checkpoints import read_state_dict as _read_state_dict  # tests replace it here
from ._encoder_modules import InputTransform, TileEncoder, build_encoder_module
from ._encoders import (
    ENCODERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Encoder,
    did_you_mean,
    encoder_names,
    get_encoder,
    is_encoder_name,
)

__all__ = ["Backbone", "build_backbone", "IMAGENET_MEAN", "IMAGENET_STD"]

#: ``weights`` values that ask for a backbone's published pretrained weights.
_PRETRAINED = ("pretrained", "hf-hub")
_HEAD_ATTRS = ("fc", "classifier", "head", "heads")


@dataclass
class Backbone:
    """A feature extractor ready for inference.

    Attributes
    ----------
    module : torch.nn.Module
        Maps normalised (B, 3, H, W) float tiles to (B, D) features (or feature maps that
        are average-pooled).
    name : str
        The backbone's name, as recorded in feature files.
    weights_id : str
        Which weights were loaded (e.g. ``"torchvision:IMAGENET1K_V1"``, a file's SHA-1,
        or ``"random-init(seed=0)"``).
    mean, std : tuple of float
        Input normalisation, per RGB channel, for inputs scaled to [0, 1].
    encoder : Encoder, optional
        For a registered pathology encoder: its card (tile size, µm/px, pooling, licence).
    owned : bool
        Whether ``module`` was built for this backbone alone (from a model name), so that a
        :class:`FeatureRunner` may cast it in place. False for a user's module, which is
        never changed: the runner works on a copy where it must convert it.
    input_transform : callable, optional
        Maps uint8 ``(B, 3, H, W)`` tiles to the network's input size before
        normalisation (an encoder card's resize and center crop); None: tiles go as read.
        Its ``repr`` is part of the feature-cache key.
    """

    module: nn.Module
    name: str
    weights_id: str
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    encoder: Encoder | None = None
    owned: bool = False
    input_transform: object = None


def _seed_from(random_state):
    if random_state is None:
        return 0
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    return int(np.random.RandomState(random_state.randint(2**31 - 1)).randint(2**31 - 1))


def _looks_like_path(weights):
    return isinstance(weights, (os.PathLike, Path)) or (
        isinstance(weights, str)
        and (weights.endswith(WEIGHT_SUFFIXES) or os.sep in weights or os.path.exists(weights))
    )


def _load_into(model, state, source, name, head_attr=None):
    """Load ``state`` into ``model``, tolerating only a missing or extra classification head."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # e.g. "size mismatch for fc.weight: ..."
        shapes = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        detail = f"{len(shapes)} tensor(s) of the wrong shape (e.g. {shapes[0]})" if shapes else exc
        raise ValueError(
            f"Weights from {source} do not fit backbone '{name}': {detail}. Check that the "
            "file was saved from the same architecture."
        ) from None

    def is_head(key):
        return head_attr is not None and key.split(".")[0] == head_attr

    missing = [k for k in missing if not is_head(k)]
    unexpected = [k for k in unexpected if not is_head(k)]
    if missing or unexpected:
        raise ValueError(
            f"Weights from {source} do not fit backbone '{name}': {len(missing)} missing keys "
            f"(e.g. {missing[:3]}) and {len(unexpected)} unexpected keys (e.g. "
            f"{unexpected[:3]}). Check that the file was saved from the same architecture."
        )


def _head_attr(model):
    for attr in _HEAD_ATTRS:
        if isinstance(getattr(model, attr, None), nn.Module):
            return attr
    return None


def _strip_head(model, name):
    attr = _head_attr(model)
    if attr is None:
        raise ValueError(
            f"Cannot find the classification head of '{name}' (looked for {_HEAD_ATTRS}). "
            "Pass a torch.nn.Module that returns features as backbone instead."
        )
    head = getattr(model, attr)
    if isinstance(head, nn.Sequential):
        linear = [i for i, m in enumerate(head) if isinstance(m, nn.Linear)]
        if linear:
            head[linear[-1]] = nn.Identity()
            return model
    setattr(model, attr, nn.Identity())
    return model


def _torchvision_cached_state(weights_enum, name, progress):
    url = weights_enum.url
    cache_dir = Path(torch.hub.get_dir()) / "checkpoints"
    cached = cache_dir / os.path.basename(url)
    if not cached.is_file():
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, os.fspath(cached), None, progress=progress)
        except (urllib.error.URLError, OSError, RuntimeError, ValueError) as exc:
            raise WeightsNotFoundError(
                f"ImageNet weights for backbone '{name}' are not in torchvision's cache "
                f"('{cached}') and could not be downloaded ({exc}). On a machine with internet, "
                f"download {url} and copy it to '{cached}' (or set TORCH_HOME), or pass "
                f"weights='/path/to/{cached.name}'. Only weights=None gives random weights."
            ) from exc
    return _read_state_dict(cached), f"torchvision:{weights_enum.name}"


def _torchvision_backbone(name, weights, random_state, progress):
    from torchvision import models

    builder = models.get_model_builder(name)
    with torch.random.fork_rng(devices=[]):
        seed = _seed_from(random_state)
        torch.manual_seed(seed)
        model = builder(weights=None)
    head = _head_attr(model)
    if weights is None:
        weights_id = f"random-init(seed={seed})"
    elif _looks_like_path(weights):
        _load_into(model, _read_state_dict(weights), f"'{weights}'", name, head)
        weights_id = file_weights_id(weights)
    else:
        enum = models.get_model_weights(name)
        key = str(weights)
        if key.lower() in ("imagenet", *_PRETRAINED):
            key = "IMAGENET1K_V1" if "IMAGENET1K_V1" in enum.__members__ else "DEFAULT"
        try:
            member = enum[key] if key != "DEFAULT" else enum.DEFAULT
        except KeyError:
            raise ValueError(
                f"weights={weights!r} is not a known weights name for '{name}' "
                f"({['imagenet', 'pretrained', *enum.__members__]}) nor an existing file."
            ) from None
        state, weights_id = _torchvision_cached_state(member, name, progress)
        _load_into(model, state, f"torchvision's {member.name}", name, head)
    return Backbone(_strip_head(model, name), name, weights_id, owned=True)


def _timm_backbone(name, weights, random_state):
    try:
        import timm
    except ImportError as exc:
        raise ImportError(
            f"Backbone '{name}' needs timm: pip install 'he2rna-sklearn[timm]'"
        ) from exc
    pretrained = weights is not None and not _looks_like_path(weights)
    if pretrained and str(weights).lower() not in ("imagenet", *_PRETRAINED):
        raise ValueError(
            f"For timm backbones weights must be 'imagenet' (or 'pretrained'), a file or None, "
            f"got {weights!r}."
        )
    with torch.random.fork_rng(devices=[]):
        seed = _seed_from(random_state)
        torch.manual_seed(seed)
        try:
            model = timm.create_model(name, pretrained=pretrained, num_classes=0)
        except RuntimeError as exc:
            if "Unknown model" in str(exc):
                raise ValueError(f"Unknown timm model '{name}'.") from exc
            raise
        except Exception as exc:
            if not pretrained:
                raise
            raise WeightsNotFoundError(
                f"Pretrained weights for timm model '{name}' could not be loaded ({exc}). Put "
                "them in the Hugging Face cache (and set HF_HUB_OFFLINE=1), or pass "
                "weights='/path/to/weights.pth'. Only weights=None gives random weights."
            ) from exc
    if weights is None:
        weights_id = f"random-init(seed={seed})"
    elif pretrained:
        weights_id = f"timm:{model.pretrained_cfg.get('tag') or 'pretrained'}"
    else:
        _load_into(model, _read_state_dict(weights), f"'{weights}'", name, _head_attr(model))
        weights_id = file_weights_id(weights)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = tuple(cfg.get("mean", IMAGENET_MEAN))
    std = tuple(cfg.get("std", IMAGENET_STD))
    return Backbone(model, f"timm:{name}", weights_id, mean, std, owned=True)


def _module_weights_id(module):
    h = hashlib.sha1()
    for key, tensor in module.state_dict().items():
        h.update(key.encode())
        # The raw bytes, through uint8: numpy has no bfloat16 (same bytes as numpy's for
        # its dtypes, so ids do not change).
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes())
    return f"module:{type(module).__name__}:sha1={h.hexdigest()[:12]}"


def _encoder_backbone(encoder, weights, random_state, progress, revision=None):
    """A registered pathology encoder with its published weights (or seeded random ones)."""
    if encoder.imagenet:
        bb = _torchvision_backbone(
            encoder.architecture.split(":", 1)[1], weights, random_state, progress
        )
        bb.encoder = encoder
        return bb
    if isinstance(weights, str) and not _looks_like_path(weights):
        key = weights.lower()
        if key == "imagenet":
            raise ValueError(
                f"Encoder '{encoder.name}' has pathology weights, not ImageNet ones: pass "
                "weights='pretrained' (read from the Hugging Face cache, offline), a checkpoint "
                "file, or None for random weights."
            )
        if key not in _PRETRAINED:
            raise ValueError(
                f"weights={weights!r} for encoder '{encoder.name}' must be 'pretrained', a "
                "checkpoint file or None."
            )
    name = f"encoder:{encoder.name}"
    if weights is None:
        if revision is not None:
            raise ValueError(
                f"The backbone names revision {revision!r}, which applies to published weights "
                "(weights='pretrained'), not to weights=None."
            )
        with torch.random.fork_rng(devices=[]):
            seed = _seed_from(random_state)
            torch.manual_seed(seed)
            module = build_encoder_module(encoder)
        weights_id = f"random-init(seed={seed})"
    else:
        source = weights if _looks_like_path(weights) else None
        path, weights_id = find_encoder_weights(encoder, source, revision=revision)
        state = _read_state_dict(path, strip_prefixes=encoder.checkpoint_layout == "timm")
        module = build_encoder_module(encoder, device="meta")
        load_encoder_state(module, encoder, state, source=f"'{path}'")
    return Backbone(
        module.eval(),
        name,
        weights_id,
        encoder.mean,
        encoder.std,
        encoder,
        owned=True,
        input_transform=InputTransform.of(encoder),
    )


def build_backbone(backbone="resnet50", weights="imagenet", *, random_state=None, progress=True):
    """Build a feature-extraction backbone.

    Parameters
    ----------
    backbone : str, Encoder or torch.nn.Module
        A registered pathology encoder (``"uni"``, ``"uni2-h"``, ``"virchow2"``,
        ``"h-optimus-1"``, ``"conch-v1.5"``... see :func:`list_encoders`, or its Hugging
        Face name ``"hf-hub:MahmoodLab/UNI"``, which may pin a revision as timm does:
        ``"hf-hub:MahmoodLab/uni@<commit>"``), a torchvision model name (``"resnet50"``,
        the paper's), a timm model name (``"timm:<name>"``, or a bare name that torchvision
        does not know), or any ``torch.nn.Module`` that maps (B, 3, H, W) tiles to
        features; wrap it in :class:`TileEncoder` to state its normalisation and pooling.
    weights : {"imagenet", "pretrained", None} or str or path
        ``"pretrained"``: the backbone's published weights; for a registered encoder they
        are read from the Hugging Face cache, offline (never downloaded). A registered
        encoder also takes a folder that holds its checkpoint (``hf download REPO
        --local-dir DIR``), a repository's cache folder (``models--org--name``) or a hub
        cache, and a repository id (``"org/name"``). ``"imagenet"``
        loads ImageNet weights (torchvision: ``IMAGENET1K_V1``, as in the paper) from
        torchvision's cache, downloading them when online; a torchvision weights name
        (``"IMAGENET1K_V2"``); a path to a checkpoint (``torch.load(weights_only=True)``
        or safetensors); or None for random initialisation seeded by ``random_state`` (0
        when None). For a module backbone, None uses the module as it is and a path loads
        a state dict into it.
    random_state : int, RandomState or None
        Seed of random initialisation (``weights=None``).
    progress : bool
        Show a progress bar while downloading.

    Raises
    ------
    WeightsNotFoundError
        If pretrained weights were asked for and cannot be found or downloaded (gated
        models say how to get them). There is no silent fallback to random weights.

    Examples
    --------
    >>> from he2rna_sklearn.features import build_backbone
    >>> bb = build_backbone("resnet18", None, random_state=0)
    >>> bb.name, bb.weights_id
    ('resnet18', 'random-init(seed=0)')
    >>> build_backbone("uni", "pretrained")  # doctest: +SKIP
    Traceback (most recent call last):
    WeightsNotFoundError: The weights of encoder 'uni' are not available offline: ...
    """
    if isinstance(backbone, Encoder) or (
        isinstance(backbone, str) and not backbone.startswith("timm:") and is_encoder_name(backbone)
    ):
        revision = split_revision(backbone)[1] if isinstance(backbone, str) else None
        try:
            encoder = get_encoder(backbone)
        except KeyError as exc:  # e.g. "stamp:<a name STAMP does not have>"
            raise ValueError(exc.args[0]) from None
        return _encoder_backbone(encoder, weights, random_state, progress, revision)
    if isinstance(backbone, nn.Module):
        if weights is not None and not _looks_like_path(weights):
            raise ValueError(
                f"backbone is a torch.nn.Module, so weights={weights!r} has no meaning: its "
                "own weights are used. Pass weights=None (or a path to a state dict to load "
                "into it)."
            )
        target = backbone.module if isinstance(backbone, TileEncoder) else backbone
        if weights is not None:
            _load_into(target, _read_state_dict(weights), f"'{weights}'", type(target).__name__)
        if isinstance(backbone, TileEncoder):
            return Backbone(
                backbone,
                f"module:{backbone.name}",
                _module_weights_id(target),
                backbone.mean,
                backbone.std,
            )
        return Backbone(backbone, f"module:{type(backbone).__name__}", _module_weights_id(backbone))
    if not isinstance(backbone, str):
        raise TypeError(
            f"backbone must be a model name or a torch.nn.Module, got {type(backbone).__name__}."
        )
    if backbone.startswith("timm:"):
        return _timm_backbone(backbone[5:], weights, random_state)
    from torchvision import models

    if backbone in models.list_models():
        return _torchvision_backbone(backbone, weights, random_state, progress)
    try:
        import timm
    except ImportError:
        timm = None
    if timm is not None and timm.is_model(backbone):
        return _timm_backbone(backbone, weights, random_state)
    classifiers = models.list_models(module=models)  # not the detection/segmentation ones
    hint = did_you_mean(backbone, {**encoder_names(), **{m: m for m in classifiers}})
    raise ValueError(
        f"Unknown backbone '{backbone}': not a torchvision model name"
        + (" nor a timm model name" if timm is not None else " (and timm is not installed)")
        + f" nor a registered encoder ({', '.join(sorted(ENCODERS))}).{hint} Examples: "
        "'resnet50', 'uni', 'hf-hub:MahmoodLab/UNI', 'timm:vit_small_patch16_224', or pass a "
        "torch.nn.Module."
    )
