"""Starting a network from a fitted estimator's (``init_from``): checks and weight copies."""

from __future__ import annotations

import torch
from sklearn.utils.validation import check_is_fitted

from ._modules import HE2RNAModule
from ._tile_types import TileTypeModule

__all__ = [
    "check_regressor_source",
    "copy_hidden_layers",
    "copy_module",
    "source_estimator",
    "source_module",
]


def source_estimator(init_from):
    """The estimator inside ``init_from`` (unwrapping a ``FrozenEstimator``)."""
    return getattr(init_from, "estimator", init_from)


def source_module(init_from, name="init_from"):
    """The fitted :class:`HE2RNAModule` of an estimator (or a ``FrozenEstimator`` of one)."""
    source = source_estimator(init_from)
    try:
        check_is_fitted(source, "module_")
    except Exception as exc:
        raise ValueError(
            f"{name} must be a fitted HE2RNARegressor or HE2RNAClassifier. Under clone() "
            "(GridSearchCV, cross_validate) an estimator parameter is cloned unfitted: pass "
            f"{name}=FrozenEstimator(fitted_model) to keep it fitted."
        ) from exc
    module = source.module_
    if not isinstance(module, (HE2RNAModule, TileTypeModule)):
        raise TypeError(f"{name} must be a fitted HE2RNARegressor or HE2RNAClassifier.")
    return module


def check_regressor_source(
    init_from, n_features, hidden, activation, names, n_types=None, link=None, rank="auto"
):
    """The module of ``init_from`` after checking it fits a regressor of this architecture
    (``hidden``, ``activation`` for the paper's network; ``n_types`` tile types, the
    ``link`` and, unless ``"auto"``, the ``rank`` of the readout for the tile-type network,
    with ``hidden`` None) on ``n_features`` tile features and the genes ``names``."""
    module = source_module(init_from)
    config = module.config
    mismatches = []
    if isinstance(module, TileTypeModule) != (hidden is None):
        source_net = "tile-type" if isinstance(module, TileTypeModule) else "paper's (MLP)"
        raise ValueError(
            f"init_from holds the {source_net} network; this regressor builds the other one: "
            "give both the same tile_types (None for the paper's network)."
        )
    if config["n_features"] != n_features:
        mismatches.append(f"{config['n_features']} tile features (X has {n_features})")
    if hidden is None:
        if config["n_types"] != n_types:
            mismatches.append(f"tile_types={config['n_types']} (this model: {n_types})")
        if config["link"] != link:
            mismatches.append(f"type_link={config['link']!r} (this model: {link!r})")
        if rank != "auto" and config["rank"] != int(rank):
            mismatches.append(f"type_rank={config['rank']} (this model: {rank})")
    else:
        if config["hidden_layer_sizes"] != hidden:
            mismatches.append(
                f"hidden_layer_sizes={config['hidden_layer_sizes']} (this model: {hidden})"
            )
        if config["activation"] != activation:
            mismatches.append(f"activation={config['activation']!r} (this model: {activation!r})")
    source_names = getattr(source_estimator(init_from), "gene_names_", None)
    if config["n_outputs"] != len(names):
        mismatches.append(f"{config['n_outputs']} genes (y has {len(names)})")
    elif source_names is not None and list(source_names) != list(names):
        mismatches.append("other genes (or another gene order) than y")
    if mismatches:
        raise ValueError(
            "init_from does not match this regressor: it has " + "; ".join(mismatches) + "."
        )
    return module


@torch.no_grad()
def copy_module(module, source):
    """Every weight and buffer of ``source`` into ``module`` (on ``module``'s device)."""
    state = {k: v.to(module.output.weight.device) for k, v in source.state_dict().items()}
    module.load_state_dict(state)


@torch.no_grad()
def copy_hidden_layers(module, source, n_frozen=0):
    """``source``'s hidden layers and feature standardisation into ``module`` (whose output
    layer keeps its own start); the first ``n_frozen`` linear layers are then frozen."""
    device = module.output.weight.device
    module.hidden.load_state_dict({k: v.to(device) for k, v in source.hidden.state_dict().items()})
    module.input_mean.copy_(source.input_mean)
    module.input_scale.copy_(source.input_scale)
    linears = [m for m in module.hidden if isinstance(m, torch.nn.Linear)]
    for layer in linears[:n_frozen]:
        layer.requires_grad_(False)
