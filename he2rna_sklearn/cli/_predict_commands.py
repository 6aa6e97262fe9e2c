"""``he2rna predict`` and ``he2rna heatmap``: a saved model applied to a feature index.

The model is a skops file written by ``he2rna fit`` (read with the trusted-type list of
:mod:`he2rna_sklearn.persistence`) or a Hugging Face-style folder (``from_pretrained``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_write
from ..features import read_index
from ..persistence import load_model
from ._command_io import (
    _atomic_csv,
    _check_outputs,
    _echo,
    _load_bags,
    _without_empty,
)
from ._inputs import CLIError

__all__ = ["cmd_heatmap", "cmd_predict"]


# -- the model ---------------------------------------------------------------------------
def _load_pretrained(source):
    """A folder of ``save_pretrained`` (or a cached repository id), as ``_load_model``
    returns models: a Pipeline, the genes and the feature dimension."""
    from sklearn.pipeline import Pipeline, make_pipeline

    from ..exceptions import WeightsNotFoundError
    from ..model import from_pretrained

    try:
        model = from_pretrained(source)
    except WeightsNotFoundError:
        raise
    except FileNotFoundError:
        raise CLIError(
            f"Model not found: '{source}' is neither a model file (.skops), a folder written "
            "by --save-pretrained, nor a Hugging Face repository id (org/name) in the cache."
        ) from None
    model = model if isinstance(model, Pipeline) else make_pipeline(model)
    final = model[-1]
    if getattr(final, "gene_names_", None) is None:
        raise CLIError(
            f"'{source}' holds a {type(final).__name__}, which predicts no expression; give "
            "an expression model (HE2RNARegressor)."
        )
    genes = [str(g) for g in final.gene_names_]
    return {"model": model, "genes": genes, "n_features": int(final.n_features_in_)}


def _load_model(path):
    """A model saved by ``he2rna fit``: loaded with skops and the trusted-type list of
    :mod:`he2rna_sklearn.persistence`; a pickle or any other type is refused unread. A
    folder (or a repository id in the Hugging Face cache) is read by ``from_pretrained``."""
    if not Path(path).is_file() and Path(path).suffix.lower() != ".skops":
        return _load_pretrained(path)
    model, metadata = load_model(path, return_metadata=True)
    missing = {"genes", "n_features"} - set(metadata)
    if missing:
        raise CLIError(
            f"'{path}' is a model saved without {sorted(missing)}: give a model saved by "
            "'he2rna fit'."
        )
    return {"model": model, **metadata}


# -- predict -----------------------------------------------------------------------------
def cmd_predict(args):
    _check_outputs((args.out, "--out"), args=args)
    saved = _load_model(args.model)
    index = read_index(args.features)
    bags = _load_bags(args, index, f"'{args.features}'")
    index, bags = _without_empty(args, index, bags, "the predictions")
    if bags and bags[0].shape[1] != saved["n_features"]:
        raise CLIError(
            f"The features have {bags[0].shape[1]} dimensions but the model was "
            f"fitted on {saved['n_features']}: featurize with the same backbone."
        )
    pred = saved["model"].predict(bags)
    table = pd.DataFrame(
        np.asarray(pred).reshape(len(bags), -1),
        columns=saved["genes"],
        index=pd.Index(index["sample_id"], name="sample_id"),
    )
    _atomic_csv(table, args.out)
    _echo(args, f"Predicted {table.shape[1]} genes for {table.shape[0]} slides: {args.out}")
    return 0


# -- heatmap -----------------------------------------------------------------------------
def cmd_heatmap(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..spatial import plot_tile_heatmap

    _check_outputs((args.out, "--out"), args=args)
    saved = _load_model(args.model)
    _check_tile_model(saved["model"], args.model)
    index = read_index(args.features)
    rows = index[index["sample_id"] == args.slide]
    if rows.empty:
        raise CLIError(
            f"Slide '{args.slide}' is not in the feature index "
            f"(e.g. {index['sample_id'].tolist()[:3]})."
        )
    row = rows.iloc[0]
    slide_path = args.slide_path or row.get("slide_path") or None
    [bag] = _load_bags(args, rows, f"'{args.features}'")  # µm: resolved below, or an error
    if bag.meta.get("coords_unit") == "um":  # e.g. STAMP: µm -> level-0 px needs the slide's
        [bag] = _load_bags(args, rows, f"'{args.features}'", _um_slide_mpp(args, slide_path))
    if bag.meta.get("coords_unit") == "deepzoom_px":  # HE2RNA .npy: needs the slide's size
        bag = _npy_on_slide(args, bag, slide_path)
    if not bag.n_tiles:
        raise CLIError(f"Slide '{args.slide}' has no tissue tiles: there is nothing to paint.")
    model = saved["model"]
    genes = [g.strip() for g in args.gene.split(",")]
    for step in model[:-1]:
        [bag] = step.transform([bag])
    try:
        scores = model[-1].predict_tiles(bag, genes[0] if len(genes) == 1 else genes)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    label = genes[0] if len(genes) == 1 else f"gene set ({len(genes)}, mean z)"
    ax = plot_tile_heatmap(bag, scores, slide_path=slide_path, label=label)
    out = Path(args.out)
    with atomic_write(out) as tmp:
        ax.figure.savefig(tmp, dpi=120, bbox_inches="tight", format=out.suffix[1:].lower() or "png")
    plt.close(ax.figure)
    _echo(args, f"Heatmap of {label} on {args.slide}: {out}")
    return 0


def _check_tile_model(model, path):
    """A model that paints tile scores (a Pipeline ending in a model with predict_tiles)."""
    steps = getattr(model, "steps", None)
    if not steps or not hasattr(steps[-1][1], "predict_tiles"):
        last = type(steps[-1][1] if steps else model).__name__
        raise CLIError(
            f"'{path}' holds a {last}, which has no tile scores to paint: give a model "
            "saved by 'he2rna fit' (an HE2RNA regressor)."
        )


def _um_slide_mpp(args, slide_path):
    """The base µm/px of a slide whose feature coordinates are in µm: read from the slide
    file's metadata (``--slide-mpp`` was not given); an error if it cannot be."""
    from ..slides import SlideReader

    hint = "pass --slide-mpp (the slide's level-0 µm per pixel)"
    if not slide_path or not Path(slide_path).is_file():
        raise CLIError(
            f"The tile coordinates of '{args.slide}' are in µm and its slide file "
            f"({slide_path or 'not in the index'}) is not here to read its µm per pixel: "
            f"{hint} or --slide-path."
        )
    try:
        with SlideReader(slide_path) as reader:
            return reader.mpp
    except (ValueError, OSError) as exc:
        raise CLIError(f"{exc} The tile coordinates are in µm: {hint}.") from None


def _npy_on_slide(args, bag, slide_path):
    """An HE2RNA .npy bag read again with its slide's dimensions (level-0 pixels)."""
    from ..features import read_he2rna_npy
    from ..slides import SlideReader

    if not slide_path or not Path(slide_path).is_file():
        raise CLIError(
            f"The tile coordinates of '{args.slide}' are DeepZoom tile indices (an HE2RNA "
            f".npy file), placed on the slide from its size; its slide file "
            f"({slide_path or 'not in the index'}) is not here: pass --slide-path."
        )
    with SlideReader(slide_path, args.slide_mpp or 1.0) as reader:  # the size only
        dimensions = reader.dimensions
    return read_he2rna_npy(bag.meta["feature_file"], slide_dimensions=dimensions)
