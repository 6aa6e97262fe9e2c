"""skorch glue: bag datasets, padding collation, and a net that draws k per batch."""

from __future__ import annotations

import numpy as np
import torch
from skorch import NeuralNet
from torch.utils.data import DataLoader, Dataset

from ..bags import check_finite_bag, is_lazy

__all__ = ["BagDataset", "BagNet", "collate_bags", "iterate_batches"]


class BagDataset(Dataset):
    """Bags (and optionally targets) as a torch Dataset; lazy bags are read per item.

    Items are ``(features, target)`` with features a (n_tiles, D) float32 array. Padding
    happens per batch in :func:`collate_bags`, so memory is bounded by one batch.
    """

    def __init__(self, bags, y=None):
        self.bags = bags
        self.y = None if y is None else np.asarray(y, dtype=np.float32)

    def __len__(self):
        return len(self.bags)

    def __getitem__(self, i):
        bag = self.bags[i]
        arr = np.asarray(bag, dtype=np.float32)
        if is_lazy(bag):
            check_finite_bag(arr, i, bag)
        target = self.y[i] if self.y is not None else np.zeros(0, dtype=np.float32)
        return arr, target


def collate_bags(batch):
    """Pad a list of ``(features, target)`` to ``({"X": (B, N, D), "mask": (B, N)}, y)``."""
    arrays, targets = zip(*batch)
    n_tiles = [a.shape[0] for a in arrays]
    X = torch.zeros(len(arrays), max(n_tiles), arrays[0].shape[1], dtype=torch.float32)
    mask = torch.zeros(len(arrays), max(n_tiles), dtype=torch.bool)
    for i, (a, n) in enumerate(zip(arrays, n_tiles)):
        X[i, :n] = torch.from_numpy(a)
        mask[i, :n] = True
    y = torch.from_numpy(np.stack(targets))
    return {"X": X, "mask": mask}, y


def iterate_batches(bags, *, batch_size, device, num_workers=0):
    """Yield padded ``(X, mask)`` batches of ``bags`` on ``device``, in order."""
    loader = DataLoader(
        BagDataset(bags),
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_bags,
        num_workers=num_workers,
    )
    for xb, _ in loader:
        yield xb["X"].to(device), xb["mask"].to(device)


class BagNet(NeuralNet):
    """A skorch ``NeuralNet`` whose module takes padded bags and draws k per batch.

    In training mode, one k per batch is drawn from ``module_.ks`` with ``k_generator``
    (a seeded ``torch.Generator``); in evaluation mode the module averages over all ks.
    """

    k_generator = None

    def infer(self, x, **fit_params):
        if self.module_.training and self.k_generator is not None and "k" not in fit_params:
            ks = self.module_.ks
            draw = int(torch.randint(len(ks), (1,), generator=self.k_generator))
            fit_params = {**fit_params, "k": ks[draw]}
        return super().infer(x, **fit_params)
