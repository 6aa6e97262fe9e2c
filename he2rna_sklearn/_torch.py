"""Torch helpers shared by the stages that run networks (features and model).

The device and numeric-precision choices, and the saving of modules as arrays, live here
so that ``model/`` does not depend on ``features/``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "cpu_supports_bf16",
    "module_state",
    "rebuild_module",
    "resolve_device",
    "resolve_precision",
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


def rebuild_module(build, saved):
    """The module saved by :func:`module_state`: ``build(config)``, then its weights loaded
    strictly; in eval mode."""
    module = build(saved["config"])
    tensors = {k: torch.as_tensor(np.asarray(v)) for k, v in saved["state_dict"].items()}
    module.load_state_dict(tensors, strict=True)
    return module.eval()
