"""The extraction engine: tiles read in DataLoader workers, batched backbone inference."""

from __future__ import annotations

import copy

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._torch import resolve_device, resolve_precision
from ..slides import SlideReader

__all__ = ["FeatureRunner", "TileDataset", "extract_features"]


class FeatureRunner:
    """Runs a :class:`Backbone` on uint8 tile batches at the chosen device and precision.

    On the CPU with ``bf16``, weights and inputs are cast to bfloat16 in channels-last
    layout (fast on CPUs with AVX512-BF16/AMX). On CUDA, ``bf16``/``fp16`` use autocast.

    A backbone built from a model name (``backbone.owned``) is converted in place. A user's
    module is never changed: the runner uses a copy in eval mode whose tensors are new only
    where they must be converted (bf16 weights take half the fp32 module's memory; fp32 on
    the CPU shares them), or the module itself when it needs no change at all.
    """

    def __init__(self, backbone, device="auto", precision="auto"):
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.backbone = backbone
        self._dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
            self.precision
        ]
        self._cast_weights = self.device.type == "cpu" and self.precision == "bf16"
        self._channels_last = self.precision != "fp32" or self.device.type == "cuda"
        if getattr(backbone, "owned", False):
            module = backbone.module.eval().to(self.device)
            if self._channels_last:
                module = module.to(memory_format=torch.channels_last)
            if self._cast_weights:
                module = module.to(torch.bfloat16)
        else:
            module = _converted_copy(
                backbone.module,
                self.device,
                torch.bfloat16 if self._cast_weights else None,
                self._channels_last,
                f"{self.device.type}, {self.precision}",
            )
        self.module = module
        self.input_transform = getattr(backbone, "input_transform", None)
        self.mean = torch.tensor(backbone.mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(backbone.std, device=self.device).view(1, 3, 1, 1) * 255
        self._n_features = None

    @torch.inference_mode()
    def __call__(self, tiles):
        """Features of a (B, 3, H, W) uint8 batch, as a (B, D) float32 array."""
        x = tiles.to(self.device, non_blocking=True)
        if self.input_transform is not None:  # the encoder card's resize / crop, on uint8
            x = self.input_transform(x)
        x = x.float()
        x = (x - self.mean) / self.std
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self._cast_weights:
            out = self.module(x.to(torch.bfloat16))
        elif self.precision != "fp32":
            with torch.autocast(self.device.type, dtype=self._dtype):
                out = self.module(x)
        else:
            out = self.module(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        elif out.ndim == 3:
            out = out[:, 0]
        elif out.ndim != 2:
            raise ValueError(f"Backbone '{self.backbone.name}' returned shape {tuple(out.shape)}.")
        return out.float().cpu().numpy()

    def n_features(self, tile_size):
        """The feature dimension, found with one dummy forward pass."""
        if self._n_features is None:
            zeros = torch.zeros(1, 3, tile_size, tile_size, dtype=torch.uint8)
            self._n_features = int(self(zeros).shape[1])
        return self._n_features


def _converted_copy(module, device, dtype, channels_last, setting):
    """``module`` in eval mode on ``device``, without changing it.

    Floating-point parameters and buffers are cast to ``dtype`` (None: kept) and 4-D ones
    made channels-last, as ``module.to`` would, but into a copy of the module: its tensors
    are new where they are converted and shared with ``module`` where not, so only the
    converted weights take memory. A module that needs no change is returned as it is.
    """
    memo, changed = {}, any(m.training for m in module.modules())
    for tensor in (*module.parameters(), *module.buffers()):
        if id(tensor) in memo:
            continue
        plain = tensor.detach()
        new = plain.to(
            device,
            dtype=dtype if dtype is not None and tensor.is_floating_point() else None,
            memory_format=torch.channels_last
            if channels_last and tensor.dim() == 4
            else torch.preserve_format,
        )
        changed = changed or new is not plain
        if isinstance(tensor, nn.Parameter):
            new = nn.Parameter(new, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = new
    if not changed:
        return module
    try:
        return copy.deepcopy(module, memo).eval()
    except Exception as exc:
        raise TypeError(
            f"The backbone module {type(module).__name__} runs as a copy ({setting}, eval "
            f"mode) so that yours is left as it is, but copy.deepcopy cannot copy it: "
            f"{type(exc).__name__}: {exc}. With precision='fp32' on the CPU, a module already "
            "in eval mode is used as it is."
        ) from exc


class TileDataset(Dataset):
    """Tiles of one slide, read and resized in the worker that asks for them.

    Each worker opens its own OpenSlide handle (handles are not shared across processes).
    Items are (3, tile_size, tile_size) uint8 tensors; normalisation happens on the device.
    ``transform`` (e.g. a stain normaliser) maps each (h, w, 3) uint8 tile to another.
    """

    def __init__(self, path, slide_mpp, coords, geometry, transform=None):
        self.path = path
        self.slide_mpp = slide_mpp
        self.coords = np.asarray(coords)
        self.geometry = geometry
        self.transform = transform
        self._reader = None

    def __len__(self):
        return len(self.coords)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_reader"] = None
        return state

    def __getitem__(self, i):
        if self._reader is None:
            self._reader = SlideReader(self.path, self.slide_mpp)
        g = self.geometry
        x, y = self.coords[i]
        img = self._reader.read_region((x, y), g.level, (g.read_size, g.read_size))
        if g.read_size != g.tile_size:
            img = img.resize((g.tile_size, g.tile_size), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
        if self.transform is not None:
            arr = np.asarray(self.transform(arr), dtype=np.uint8)
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def extract_features(dataset, runner, *, batch_size=64, num_workers=0, progress=None, out=None):
    """Run ``runner`` over every tile of ``dataset``; returns (n_tiles, D) float32.

    With ``num_workers > 0`` tiles are read and decoded in parallel processes while the
    backbone runs on the previous batch. ``out`` (e.g. a :class:`BagWriter`) receives the
    features batch by batch instead of an array in memory.
    """
    n = len(dataset)
    d = runner.n_features(dataset.geometry.tile_size)
    if out is None:
        out = np.empty((n, d), dtype=np.float32)
    if n == 0:
        return out
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=runner.device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    start = 0
    for batch in loader:
        feats = runner(batch)
        out[start : start + len(feats)] = feats
        start += len(feats)
        if progress is not None:
            progress.update(len(feats))
    return out
