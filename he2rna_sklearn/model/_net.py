"""skorch glue: bag datasets, padding collation, and a net that draws k per batch."""

from __future__ import annotations

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.dataset import unpack_data
from torch.utils.data import DataLoader, Dataset

from ..bags import Bag, check_finite_bag, is_lazy

__all__ = [
    "BagDataset",
    "BagNet",
    "TrainingInterrupted",
    "collate_bags",
    "iterate_batches",
    "split_batch",
]


class BagDataset(Dataset):
    """Bags (and optionally targets) as a torch Dataset.

    Items are ``(index, bag, target)``; bags stay as they are (lazy bags are not read
    here) and :func:`collate_bags` reads them straight into the padded batch, so memory is
    bounded by one batch and a bag is never held twice.
    """

    def __init__(self, bags, y=None):
        self.bags = bags
        self.y = None if y is None else np.asarray(y)

    def __len__(self):
        return len(self.bags)

    def __getitem__(self, i):
        target = self.y[i] if self.y is not None else np.zeros(0, dtype=np.float32)
        return i, self.bags[i], target


def _fill(out, bag):
    """Write a bag's features into ``out`` (a float32 array of the bag's shape)."""
    features = bag.features if isinstance(bag, Bag) else bag
    read_into = getattr(features, "read_into", None)
    if read_into is not None:
        read_into(out)
    else:
        out[...] = np.asarray(bag, dtype=np.float32)


def collate_bags(batch):
    """Pad ``(index, bag, target)`` items to ``({"X": (B, N, D), "mask": (B, N)}, y)``."""
    indices, bags, targets = zip(*batch)
    n_tiles = [bag.shape[0] for bag in bags]
    X = torch.zeros(len(bags), max(n_tiles), bags[0].shape[1], dtype=torch.float32)
    mask = torch.zeros(len(bags), max(n_tiles), dtype=torch.bool)
    view = X.numpy()
    for row, (i, bag, n) in enumerate(zip(indices, bags, n_tiles)):
        _fill(view[row, :n], bag)
        if is_lazy(bag):
            check_finite_bag(view[row, :n], i, bag)
        mask[row, :n] = True
    y = torch.from_numpy(np.stack(targets))
    return {"X": X, "mask": mask}, y


def split_batch(X, mask, max_tiles):
    """Split a padded batch into chunks of at most ``max_tiles`` padded tiles each.

    Each chunk is trimmed to its own longest bag. Yields ``(slice, X_chunk, mask_chunk)``.
    """
    batch, n_max = mask.shape
    per = batch if not max_tiles else max(1, int(max_tiles) // max(n_max, 1))
    for start in range(0, batch, per):
        sl = slice(start, min(start + per, batch))
        n = int(mask[sl].sum(dim=1).max())
        yield sl, X[sl, :n], mask[sl, :n]


def iterate_batches(bags, *, batch_size, device, num_workers=0, max_tiles=None):
    """Yield padded ``(X, mask)`` chunks of ``bags`` on ``device``, in order."""
    loader = DataLoader(
        BagDataset(bags),
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_bags,
        num_workers=num_workers,
    )
    for xb, _ in loader:
        for _, X, mask in split_batch(xb["X"], xb["mask"], max_tiles):
            yield X.to(device), mask.to(device)


class TrainingInterrupted(BaseException):
    """Ctrl-C during training. skorch's ``EarlyStopping`` ends training by raising
    ``KeyboardInterrupt``, so its ``partial_fit`` swallows every ``KeyboardInterrupt`` and
    returns a half-trained net as if training had ended. :class:`BagNet` raises this
    instead when the interrupt did not come from early stopping (skorch lets it through),
    and the estimators turn it back into ``KeyboardInterrupt`` after dropping the
    half-trained network."""


class BagNet(NeuralNet):
    """A skorch ``NeuralNet`` whose module takes padded bags and draws k per batch.

    In training, one k per batch is drawn from ``module_.ks`` with a ``torch.Generator``
    seeded by ``k_seed``; in evaluation the module averages over all ks. Batches with more
    than ``max_batch_tiles`` padded tiles are processed in chunks whose gradients
    accumulate before the optimizer step, so memory stays bounded with large bags.

    Parameters
    ----------
    module, criterion, **kwargs
        As for ``skorch.NeuralNet``.
    k_seed : int, optional
        Seed of the per-batch k draws. None draws no k: every batch pools over all ks,
        as at inference.
    max_batch_tiles : int, optional
        Largest number of padded tiles processed at once (None: no chunking).
    output_l2 : float, default=0.0
        Penalty ``output_l2 * ||W||^2`` on the output layer's weights (the module's
        ``readout_weight()`` where it has one) added to the
        training loss (e.g. the ridge penalty of a closed-form start, per sample and
        output, so that fine-tuning keeps the regularisation that made the start good).
    """

    def __init__(
        self,
        module,
        criterion,
        *args,
        k_seed=None,
        max_batch_tiles=None,
        output_l2=0.0,
        **kwargs,
    ):
        super().__init__(module, criterion, *args, **kwargs)
        self.k_seed = k_seed
        self.max_batch_tiles = max_batch_tiles
        self.output_l2 = output_l2

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        if training and self.output_l2:
            readout = getattr(self.module_, "readout_weight", None)
            weight = self.module_.output.weight if readout is None else readout()
            loss = loss + self.output_l2 * weight.pow(2).sum()
        return loss

    def initialize(self):
        super().initialize()
        self.k_generator_ = (
            None if self.k_seed is None else torch.Generator().manual_seed(int(self.k_seed))
        )
        return self

    def _draw_k(self, fit_params):
        if self.k_generator_ is None or "k" in fit_params:
            return fit_params
        ks = self.module_.ks
        if not ks:  # the tile-type network pools by the mean: no k to draw
            return fit_params
        draw = int(torch.randint(len(ks), (1,), generator=self.k_generator_))
        return {**fit_params, "k": ks[draw]}

    def _chunked_step(self, batch, training, **fit_params):
        Xi, yi = unpack_data(batch)
        total, preds = 0.0, []
        n = len(yi)
        for sl, X, mask in split_batch(Xi["X"], Xi["mask"], self.max_batch_tiles):
            x = {"X": X, "mask": mask}
            y_pred = self.infer(x, **fit_params)
            loss = self.get_loss(y_pred, yi[sl], X=x, training=training)
            loss = loss * ((sl.stop - sl.start) / n)
            if training:
                loss.backward()
            total = total + loss.detach()
            preds.append(y_pred.detach() if training else y_pred)
        return {"loss": total, "y_pred": torch.cat(preds)}

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt as exc:
            if self._stopped_early():
                raise  # skorch's own way to end training: partial_fit handles it
            raise TrainingInterrupted("training was interrupted") from exc

    def _stopped_early(self):
        """Whether an ``EarlyStopping`` callback has run out of patience (it then raises
        ``KeyboardInterrupt`` to end training)."""
        return any(
            isinstance(cb, EarlyStopping) and getattr(cb, "misses_", 0) >= cb.patience
            for _, cb in getattr(self, "callbacks_", [])
        )

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        return self._chunked_step(batch, True, **self._draw_k(fit_params))

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        with torch.no_grad():
            return self._chunked_step(batch, False, **fit_params)
