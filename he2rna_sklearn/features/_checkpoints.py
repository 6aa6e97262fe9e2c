"""Weight files, read without running code from them (:func:`read_state_dict`), and the
published checkpoints of registered encoders: found in the Hugging Face cache without
network access, renamed from their key layout to timm's, and loaded strictly.

Key layouts (:data:`~._encoders.LAYOUTS`): timm's own, Hugging Face ``ViTModel`` and
``Dinov2Model`` (transformers 4 and 5 names), and CONCH v1.5's vision tower. A new layout
needs a converter in :data:`_CONVERTERS`.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from pathlib import Path

import torch

from .._torch import state_mismatch
from ..exceptions import WeightsNotFoundError
from ._encoder_modules import loadable_part

#: Suffixes of weight files (a path with one names a file, not a repository id).
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")

__all__ = [
    "file_sha1",
    "file_weights_id",
    "find_encoder_weights",
    "load_encoder_state",
    "read_state_dict",
]


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


def _resample_pos_embed(state, target, key, n_prefix, interpolation="bicubic"):
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
        interpolation=interpolation,
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
    target = loadable_part(module, encoder)
    own = target.state_dict()
    prefix = "trunk." if encoder.checkpoint_layout == "conch-v1.5" else ""
    trunk = module.trunk
    n_prefix = 0 if getattr(trunk, "no_embed_class", False) else trunk.num_prefix_tokens
    pos_key = prefix + "pos_embed"
    if pos_key in own:
        # CONCH v1.5: bilinear to the trunk's grid, as TRIDENT loads it (the forward pass
        # then interpolates to the input's grid); timm's bicubic otherwise.
        mode = "bilinear" if encoder.checkpoint_layout == "conch-v1.5" else "bicubic"
        state = _resample_pos_embed(state, own[pos_key], pos_key, n_prefix, mode)
    missing, unexpected, wrong = state_mismatch(own, state)
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


def file_sha1(path, chunk=1 << 22):
    """The SHA-1 of a file's content (hex)."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_weights_id(path):
    """``file:<name>:sha1=<12 hex>``: weights given as a file are named by their content."""
    path = Path(path)
    return f"file:{path.name}:sha1={file_sha1(path)[:12]}"


def _how_to_get(encoder):
    gated = f"It is gated: accept the conditions on {encoder.url} first. " if encoder.gated else ""
    return (
        f"{gated}Or pass the checkpoint ({' or '.join(encoder.weight_files)}) or the folder "
        f"that holds it as weights='/path/to/{encoder.weight_files[0]}'. Only weights=None "
        "gives random weights."
    )


def _is_hub_cache(folder):
    """Whether ``folder`` is a Hugging Face hub cache (holds ``models--*`` folders)."""
    return any(p.name.startswith("models--") and p.is_dir() for p in folder.iterdir())


def find_encoder_weights(encoder, source=None, *, revision=None, cache_dir=None):
    """The checkpoint file of a registered encoder, found offline, and its weights id.

    Parameters
    ----------
    encoder : Encoder
    source : str or Path, optional
        None: the encoder's repository in the Hugging Face cache (any spelling of its
        name, ``refs/main`` or a single pinned snapshot, see :mod:`he2rna_sklearn._hub`).
        Else a checkpoint file; a folder holding one of ``encoder.weight_files`` (e.g.
        made with ``hf download REPO --local-dir DIR``); a repository's cache folder
        (``models--org--name``); a Hugging Face hub cache holding the encoder's
        repository; or a repository id (``"org/name"``, ``"hf-hub:org/name@rev"``).
    revision : str, optional
        Branch, tag or commit of a cached repository.
    cache_dir : str or Path, optional
        The hub cache (default: the environment's).

    Returns
    -------
    path : pathlib.Path
    weights_id : str
        Recorded in feature files: ``hf-hub:<repo>@<commit[:12]>/<file>`` for a cached
        repository (the registry's spelling of the encoder's own repository), and
        ``file:<name>:sha1=<12 hex>`` for a file, given or found in a folder.

    Raises
    ------
    WeightsNotFoundError
        If the weights are not there, saying how to get them.
    """
    from .._hub import find_file

    if source is None:
        if encoder.repo_id is None:
            raise WeightsNotFoundError(
                f"Encoder '{encoder.name}' has no Hugging Face repository: pass its weights "
                "file as weights=."
            )
        source = encoder.repo_id
    path = Path(os.path.expanduser(os.fspath(source)))
    if not path.exists() and path.suffix in WEIGHT_SUFFIXES:
        raise WeightsNotFoundError(f"Weights file of encoder '{encoder.name}' not found: '{path}'.")
    if path.is_file():
        if revision is not None:
            raise ValueError(
                f"A revision ({revision!r}) applies to a cached repository; '{path}' is a file."
            )
        return path, file_weights_id(path)
    try:
        if path.is_dir() and _is_hub_cache(path) and encoder.repo_id is not None:
            source, cache_dir = encoder.repo_id, path
        found, weights_id = find_file(
            source, encoder.weight_files, revision=revision, cache_dir=cache_dir
        )
    except WeightsNotFoundError as exc:
        raise WeightsNotFoundError(
            f"The weights of encoder '{encoder.name}' are not available offline: {exc} "
            + _how_to_get(encoder)
        ) from None
    except FileNotFoundError as exc:  # a path that does not exist (not a repository id)
        raise WeightsNotFoundError(
            f"Weights of encoder '{encoder.name}' not found: '{source}' ({exc})"
        ) from None
    except ValueError as exc:  # several snapshots and no refs/main: say how to pick one
        raise ValueError(
            f"{exc} For encoder '{encoder.name}', name the revision in the backbone: "
            f"backbone='hf-hub:{encoder.repo_id}@<commit>'."
        ) from None
    if not weights_id.startswith("hf-hub:"):  # a local folder: named by the file's content
        return found, file_weights_id(found)
    repo = weights_id[len("hf-hub:") :].split("@", 1)[0]
    if encoder.repo_id is not None and repo.lower() == encoder.repo_id.lower():
        # One id per repository whatever the cache folder's spelling, as before (cached
        # features stay valid).
        weights_id = f"hf-hub:{encoder.repo_id}@" + weights_id.split("@", 1)[1]
    return found, weights_id


def read_state_dict(path, *, strip_prefixes=True):
    """The state dict in a weights file, read without running code from it.

    A ``.safetensors`` file, or a ``torch.save`` archive read with ``weights_only=True`` (a
    file that needs more is refused, never loaded with ``weights_only=False``). A state dict
    nested under ``state_dict``, ``model``, ``model_state_dict`` or ``module`` is taken
    out; with ``strip_prefixes``, the key prefixes ``module.``, ``model.`` and ``backbone.``
    are removed.
    """
    path = Path(path)
    if path.is_dir():
        raise WeightsNotFoundError(
            f"Weights '{path}' is a folder: pass the checkpoint file in it (a folder is "
            "accepted as weights= of the registered encoders, see list_encoders())."
        )
    if not path.is_file():
        raise WeightsNotFoundError(f"Weights file not found: '{path}'.")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"Reading '{path}' needs the safetensors package: pip install safetensors"
            ) from exc
        state = load_file(os.fspath(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            # torch's message suggests weights_only=False, which can run code from the
            # file: never do it, and do not relay the suggestion.
            text = str(exc).strip()
            if not zipfile.is_zipfile(path):
                reason = "not a PyTorch checkpoint (torch.save writes a zip archive)"
            elif "weights_only" in text or "weights only" in text.lower():
                reason = (
                    "it holds Python objects besides tensors, which would load only by "
                    "running code from the file (refused)"
                )
            else:
                reason = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
            raise ValueError(
                f"Cannot read weights file '{path}': {reason}. Give a PyTorch state dict "
                "(.pth/.pt saved with torch.save(model.state_dict(), path)) or a .safetensors "
                "file."
            ) from None
    for key in ("state_dict", "model", "model_state_dict", "module"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"Weights file '{path}' holds no state dict.")
    if not strip_prefixes:
        return dict(state)
    prefixes = ("module.", "model.", "backbone.")
    out = {}
    for k, v in state.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p) :]
        out[k] = v
    return out
