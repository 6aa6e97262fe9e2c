"""SEQUOIA's released checkpoints: the cancer types and features they take, and a folder
(or cached Hugging Face repository) read into a :class:`~._sequoia_modules.SequoiaModule`.

A checkpoint folder holds SEQUOIA's ``config.json`` and ``model.safetensors``; its gene list
comes from ``genes.txt`` or ``gene_list.csv`` beside them, or from the caller. The config is
checked against the weights' shapes before anything is built, and the weights load strictly;
nothing is downloaded and no pickle is read. :class:`~._sequoia.SequoiaRegressor` is built
from what :func:`read_sequoia_checkpoint` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._hub import read_json_object, resolve_snapshot
from .._torch import build_checked, safetensors_shapes, state_mismatch
from ._sequoia_modules import SequoiaModule, config_from_sequoia

__all__ = [
    "SEQUOIA_CANCERS",
    "SEQUOIA_FEATURE_SPEC",
    "SequoiaCheckpoint",
    "read_gene_list",
    "read_sequoia_checkpoint",
]

#: The TCGA cancer types of SEQUOIA's released checkpoints (``gevaertlab/sequoia-{cancer}-{fold}``,
#: folds 0 to 4), as in its repository's ``src/folds``.
SEQUOIA_CANCERS = (
    "blca",
    "brca",
    "coad",
    "gbm",
    "hnsc",
    "kirc",
    "kirp",
    "lihc",
    "luad",
    "lusc",
    "paad",
    "prad",
    "skcm",
    "stad",
    "thca",
    "ucec",
)

#: The features of SEQUOIA's released checkpoints: UNI (1024-d, published weights) on tiles
#: read as 256 px at 20x and resized to 224 px, i.e. 224 px at 0.5 * 256 / 224 µm/px.
SEQUOIA_FEATURE_SPEC = {
    "encoder": "uni",
    "weights": "published",
    "n_features": 1024,
    "mpp": 0.5 * 256 / 224,
    "tile_size": 224,
}

#: Files of a checkpoint folder read as its gene list, in this order.
GENE_FILES = ("genes.txt", "gene_list.csv")

_SEQUOIA_GENES_HINT = (
    "SEQUOIA's checkpoints hold no gene names; their README gives them in examples/"
    "gene_list.csv of https://github.com/gevaertlab/sequoia-pub (20,820 genes). Pass "
    "genes='gene_list.csv' (or a list of names), or copy that file into the checkpoint folder."
)


def read_gene_list(genes, n_outputs, source):
    """Gene names from a sequence, a ``.txt`` file (one per line) or a ``.csv`` file (a
    ``gene`` column, or a single column with a header); checked against ``n_outputs``."""
    where = "genes"
    if isinstance(genes, (str, Path)):
        path = Path(genes)
        where = f"'{path}'"
        if not path.is_file():
            raise FileNotFoundError(f"Gene list not found: '{path}'.")
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            if "gene" in table.columns:
                names = table["gene"].tolist()
            elif table.shape[1] == 1:
                names = table.iloc[:, 0].tolist()
            else:
                raise ValueError(
                    f"Gene list {where} has columns {list(table.columns)[:5]}; give one column "
                    "of names (header 'gene')."
                )
        else:
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        names = [str(g) for g in genes]
    if len(names) != n_outputs:
        raise ValueError(
            f"{where} holds {len(names)} gene names but the model at {source} has "
            f"{n_outputs} outputs; give the gene list the model was trained with."
        )
    dupes = pd.Index(names)[pd.Index(names).duplicated()].unique().tolist()
    if dupes:
        raise ValueError(f"{where} repeats gene names {dupes[:5]}; names must be unique.")
    return np.asarray(names, dtype=object)


def load_state_strict(module, path, source):
    """Load ``model.safetensors`` into ``module``; any missing, unexpected or misshapen
    tensor is a one-line error naming ``source``. Safetensors holds tensors only: no code
    runs on load."""
    from safetensors.torch import load_file

    state = load_file(path, device="cpu")
    missing, unexpected, wrong = state_mismatch(module.state_dict(), state)
    if missing or unexpected or wrong:
        raise ValueError(
            f"The weights at {source} do not fit its config: {len(missing)} missing tensors "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(wrong)} of the wrong shape (e.g. {wrong[:2]})."
        )
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return module.eval()


def _weights_file(snapshot):
    path = snapshot.find("model.safetensors")
    if path is not None:
        return path
    if snapshot.find("pytorch_model.bin") is not None:
        raise ValueError(
            f"{snapshot.source} holds pytorch_model.bin (a pickle, which can run code when "
            "loaded) and no model.safetensors; it was not loaded. Convert it with "
            "safetensors.torch.save_file on a machine you trust."
        )
    return snapshot.file("model.safetensors")  # raises WeightsNotFoundError


@dataclass(frozen=True)
class SequoiaCheckpoint:
    """A released checkpoint, read: what :meth:`SequoiaRegressor.from_pretrained` is
    built from."""

    #: :class:`SequoiaModule` arguments (:func:`~._sequoia_modules.config_from_sequoia`).
    config: dict
    #: The module, its weights loaded, in eval mode.
    module: SequoiaModule
    #: The names of the outputs, in order.
    gene_names: np.ndarray
    #: The features the model takes.
    feature_spec: dict
    #: Where it came from (``hf-hub:org/name@commit`` or a folder).
    source: str


def read_sequoia_checkpoint(
    source, *, genes=None, revision=None, cache_dir=None, feature_spec=None
):
    """Read one released SEQUOIA checkpoint, offline; the arguments are those of
    :meth:`~._sequoia.SequoiaRegressor.from_pretrained`, which documents them and the
    errors."""
    snapshot = resolve_snapshot(source, revision=revision, cache_dir=cache_dir)
    config_path = snapshot.file("config.json")
    config = read_json_object(config_path)
    if "format" in config:  # a model saved by he2rna-sklearn
        raise ValueError(
            f"{snapshot.source} was saved by he2rna-sklearn, not released by SEQUOIA: load "
            "it with he2rna_sklearn.model.from_pretrained, which builds the class it holds."
        )
    args = config_from_sequoia(config, source=f"'{config_path}'")
    path = _weights_file(snapshot)  # the config checked against its shapes, then built
    shapes = safetensors_shapes(path)
    module = build_checked(lambda c: SequoiaModule(**c), args, shapes, snapshot.source)
    module = load_state_strict(module, path, snapshot.source)
    if genes is None:
        gene_file = snapshot.find(*GENE_FILES)
        if gene_file is None:
            raise ValueError(
                f"{snapshot.source} has no gene list ({' or '.join(GENE_FILES)}). "
                + _SEQUOIA_GENES_HINT
            )
        genes = gene_file
    names = read_gene_list(genes, args["n_outputs"], snapshot.source)
    if feature_spec is None:
        if args["n_features"] == SEQUOIA_FEATURE_SPEC["n_features"]:
            feature_spec = dict(SEQUOIA_FEATURE_SPEC)
        else:
            feature_spec = {"n_features": args["n_features"]}
    return SequoiaCheckpoint(args, module, names, feature_spec, snapshot.source)
