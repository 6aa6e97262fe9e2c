"""The paper's transfer network: slides' mean tile features, and an MLP on them.

Used by :class:`~he2rna_sklearn.model.MeanFeatureEmbedder` (``_paper_transfer.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from ..bags import check_bags, check_finite_bag, is_lazy

__all__ = ["ACTIVATIONS", "MeanFeatureMLP", "SeededPermutation", "mean_tile_features"]

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def mean_tile_features(X, *, n_features=None, name="X"):
    """The mean feature vector of each bag, (n_slides, n_features) float32.

    Parameters
    ----------
    X : sequence of bags
    n_features : int, optional
        The feature count every bag must have.
    name : str
        The parameter name used in error messages.

    Returns
    -------
    means : ndarray of shape (n_slides, n_features)

    Examples
    --------
    >>> import numpy as np
    >>> mean_tile_features([np.ones((3, 2)), np.zeros((5, 2))])
    array([[1., 1.],
           [0., 0.]], dtype=float32)
    """
    bags, n_features = check_bags(X, n_features=n_features, name=name)
    out = np.empty((len(bags), n_features), np.float32)
    for i, bag in enumerate(bags):
        arr = np.asarray(bag, dtype=np.float64)
        if is_lazy(bag):  # in-memory bags were checked; lazy ones are now
            check_finite_bag(arr, i, bag, name)
        out[i] = arr.mean(axis=0)
    return out


class MeanFeatureMLP(nn.Module):
    """Standardise a slide's mean features, hidden layers, then a linear layer to genes."""

    def __init__(self, n_features, hidden, n_outputs, activation, dropout, mean, scale):
        super().__init__()
        self.config = {
            "n_features": int(n_features),
            "hidden": [int(h) for h in hidden],
            "n_outputs": int(n_outputs),
            "activation": str(activation),
            "dropout": float(dropout),
        }
        self.register_buffer("input_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("input_scale", torch.as_tensor(scale, dtype=torch.float32))
        sizes = (n_features, *hidden)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(sizes[-1], n_outputs)
        nn.init.zeros_(self.output.bias)  # targets are centred on their training mean

    def embed(self, x):
        """The last hidden layer after its activation (no dropout: for eval mode)."""
        h = (x - self.input_mean) / self.input_scale
        for i, layer in enumerate(self.hidden):
            if i:
                h = self.dropout(h)
            h = self.activation(layer(h))
        return h

    def forward(self, x):
        return self.output(self.dropout(self.embed(x)))

    @classmethod
    def from_config(cls, config):
        """An untrained network of ``config`` (its input mean and scale are buffers, loaded
        with the state dict)."""
        n = int(config["n_features"])
        return cls(
            n,
            tuple(config["hidden"]),
            int(config["n_outputs"]),
            config["activation"],
            float(config["dropout"]),
            np.zeros(n, np.float32),
            np.ones(n, np.float32),
        )


class SeededPermutation(Sampler):
    """Sampler of ``range(n)`` in a new order per epoch, drawn from a NumPy ``RandomState``
    (the training order of earlier versions of ``MeanFeatureEmbedder``, kept so that its
    fits stay the same)."""

    def __init__(self, n, random_state):
        self.n, self.random_state = n, random_state

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter(self.random_state.permutation(self.n).tolist())
