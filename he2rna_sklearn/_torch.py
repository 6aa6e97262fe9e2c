"""Torch helpers shared by the stages that run networks (features and model).

The device and numeric-precision choices, and the saving of modules as arrays, live here
so that ``model/`` does not depend on ``features/``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "ModuleConfigError",
    "build_checked",
    "cpu_supports_bf16",
    "module_state",
    "rebuild_module",
    "resolve_device",
    "resolve_precision",
    "safetensors_shapes",
    "state_mismatch",
]


def resolve_device(device="auto"):
    """``"auto"`` picks CUDA when available, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={device!r} is not a device torch knows; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from None
    if dev.type not in ("cpu", "cuda", "mps", "xpu"):
        raise ValueError(
            f"device={device!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for but CUDA is not available; use 'auto' or 'cpu'."
        )
    return dev


def cpu_supports_bf16():
    """Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the build
        return False


def resolve_precision(precision, device):
    """Resolve ``"auto"`` to ``"bf16"`` where the hardware runs it natively, else ``"fp32"``."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}.")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_supports_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs a CUDA device; on the CPU use 'bf16' or 'fp32'.")
    return precision


def module_state(module):
    """A module's ``config`` and weights as numpy arrays: what a saved estimator holds
    instead of torch objects (skops, see :mod:`he2rna_sklearn.persistence`)."""
    return {
        "config": dict(module.config),
        "state_dict": {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()},
    }


def state_mismatch(own, state, *, expected="expected"):
    """How a state dict differs from a module's: what a strict load would refuse.

    Parameters
    ----------
    own, state : mapping of str to tensor, array or shape
        The module's tensors (or their shapes) and those to load into it.
    expected : str, default="expected"
        The words before the module's shape in each entry of ``wrong``.

    Returns
    -------
    missing : list of str
        Names of ``own`` that ``state`` lacks, sorted.
    unexpected : list of str
        Names of ``state`` that ``own`` lacks, sorted.
    wrong : list of str
        ``"name (shape) (expected (own shape))"`` for each shared name whose shapes differ,
        sorted by name.
    """
    own = {k: tuple(int(n) for n in getattr(v, "shape", v)) for k, v in own.items()}
    state = {k: tuple(int(n) for n in getattr(v, "shape", v)) for k, v in state.items()}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k} {state[k]} ({expected} {own[k]})"
        for k in sorted(set(own) & set(state))
        if state[k] != own[k]
    ]
    return missing, unexpected, wrong


class ModuleConfigError(ValueError):
    """A saved module's config cannot be built, or does not fit its saved weights."""


def build_checked(build, config, shapes, source="the saved model"):
    """``build(config)``, once its tensors are known to have the saved ``shapes``.

    The module is first built on PyTorch's ``meta`` device, which allocates no memory, and
    its state-dict shapes are compared with ``shapes`` (name -> shape of the saved
    arrays). A config that does not fit the saved weights (e.g. a file whose config asks
    for 10**6 hidden units beside small arrays: 2.7 GB before any check) is refused in one
    line before anything is allocated.

    Parameters
    ----------
    build : callable
        ``config -> nn.Module``.
    config : dict
    shapes : dict of str to tuple of int
    source : str
        The file or folder, named in errors.

    Returns
    -------
    module : nn.Module
        Built for real (weights not loaded yet).

    Raises
    ------
    ModuleConfigError
        A ValueError: the config cannot be built, or its tensors differ from ``shapes``
        (missing, unexpected, or of another shape).
    """
    if not isinstance(config, dict):
        raise ModuleConfigError(
            f"{source}: the module config is not a mapping ({type(config).__name__})."
        )
    try:
        with torch.device("meta"):
            skeleton = build(config)
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ModuleConfigError(f"{source}: the module config does not fit ({reason}).") from None
    missing, unexpected, wrong = state_mismatch(
        skeleton.state_dict(), shapes, expected="the config makes"
    )
    if missing or unexpected or wrong:
        raise ModuleConfigError(
            f"The weights at {source} do not fit its config: {len(missing)} missing tensors "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(wrong)} of the wrong shape (e.g. {wrong[:2]}); nothing was built."
        )
    return build(config)


def safetensors_shapes(path):
    """Name -> shape of the tensors of a safetensors file, read from its header only."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as fh:
        return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}


def rebuild_module(build, saved, source="the saved model"):
    """The module saved by :func:`module_state`: ``build(config)``, checked first against
    the saved arrays' shapes (:func:`build_checked`), then its weights loaded strictly; in
    eval mode."""
    state_dict = saved["state_dict"]
    shapes = {k: np.shape(v) for k, v in state_dict.items()}
    module = build_checked(build, saved["config"], shapes, source)
    tensors = {k: torch.as_tensor(np.asarray(v)) for k, v in state_dict.items()}
    module.load_state_dict(tensors, strict=True)
    return module.eval()
