"""The publication's training settings, as parameters of :class:`HE2RNARegressor`."""

from __future__ import annotations

from types import MappingProxyType

from ._modules import KS_ALL_TILES, KS_SUPER_TILES

__all__ = ["PAPER_SETTINGS"]

_COMMON = {
    "tile_types": None,  # the per-tile MLP with top-k pooling per gene
    "hidden_layer_sizes": (1024, 1024),  # all genes; the paper used (256, 256) for gene groups
    "activation": "relu",
    "dropout": 0.25,
    "standardize": False,  # raw log10(1 + FPKM-UQ) targets and raw ResNet50 features
    "init": "random",  # PyTorch's initialisation, output bias at the genes' training means
    "refit": False,  # the model of the early-stopping epoch, trained on 90% of patients
    "k_training": "random",  # one k drawn per batch
    "clip_at_zero": True,  # a ReLU on predictions at evaluation
    "lr": 3e-4,
    "weight_decay": 0.0,
    "validation_fraction": 0.1,
}

#: Parameters of :class:`HE2RNARegressor` that reproduce the training of Schmauch et al.
#: (Nat Commun 2020), in two variants:
#:
#: * ``"super_tiles"``: on bags of 100 super-tiles (``SuperTiles(n_clusters=100)``), ks
#:   ``KS_SUPER_TILES``, batches of 16 slides, up to 200 epochs, patience 50;
#: * ``"all_tiles"``: on bags of all tiles (up to 8,000), ks ``KS_ALL_TILES``, batches of 4,
#:   up to 100 epochs, patience 30; the paper started it from the trained super-tiles model
#:   (pass ``init_from=super_tiles_model``).
#:
#: Both use hidden layers (1024, 1024) (the paper's choice for all genes; (256, 256) for
#: gene groups), ReLU, dropout 0.25, Adam at lr 3e-4, MSE on raw targets
#: (``standardize=False``), PyTorch's initialisation with the output bias at the genes'
#: training means (``init="random"``), one k drawn per batch (``k_training="random"``), 10%
#: of patients for early stopping on the mean per-gene r (per project and then averaged when
#: ``fit`` gets ``projects=``) and the model of the best epoch kept as is (``refit=False``),
#: and predictions clipped at 0 (``clip_at_zero=True``). The
#: paper trained on primary tumours only
#: (:func:`~he2rna_sklearn.datasets.load_expression` ``sample_types="01"``) with
#: log10(1 + FPKM-UQ) targets.
#:
#: The package's defaults depart from these where they learn better on cohorts of tens to
#: hundreds of slides (see :class:`HE2RNARegressor`); the entries hold no ``random_state``
#: or ``init_from``. The dicts are read-only: copy one to change it, e.g.
#: ``HE2RNARegressor(**{**PAPER_SETTINGS["super_tiles"], "hidden_layer_sizes": (256, 256)})``.
PAPER_SETTINGS = MappingProxyType(
    {
        "super_tiles": MappingProxyType(
            {**_COMMON, "ks": KS_SUPER_TILES, "batch_size": 16, "max_epochs": 200, "patience": 50}
        ),
        "all_tiles": MappingProxyType(
            {**_COMMON, "ks": KS_ALL_TILES, "batch_size": 4, "max_epochs": 100, "patience": 30}
        ),
    }
)
