"""The ``he2rna`` subcommands."""

from __future__ import annotations

import os
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from .._version import __version__
from ._manifest import (
    INDEX_NAME,
    CLIError,
    match_expression,
    read_index,
    read_manifest,
    slides_manifest,
)

__all__ = [
    "cmd_demo",
    "cmd_evaluate",
    "cmd_featurize",
    "cmd_fit",
    "cmd_heatmap",
    "cmd_index",
    "cmd_predict",
]


def _echo(args, text):
    """Report a result (``--quiet`` silences progress bars, not results)."""
    print(text)


def _atomic_csv(table, path, **kwargs):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    table.to_csv(tmp, **kwargs)
    os.replace(tmp, path)
    return path


# -- featurize ---------------------------------------------------------------------------
def cmd_featurize(args):
    from ..features import SlideFeaturizer

    if bool(args.slides) == bool(args.manifest):
        raise CLIError("Give slide files or --manifest CSV (one of the two).")
    manifest = read_manifest(args.manifest) if args.manifest else slides_manifest(args.slides)
    out = Path(args.out)
    featurizer = SlideFeaturizer(
        backbone=args.backbone,
        weights=args.weights,
        mpp=args.mpp,
        magnification=args.magnification,
        tile_size=args.tile_size,
        max_tiles=args.max_tiles,
        min_tissue_fraction=args.min_tissue_fraction,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=args.device,
        precision=args.precision,
        cache_dir=out,
        lazy=True,
        slide_mpp=args.slide_mpp,
        on_error=args.on_error,
        n_jobs=args.jobs,
        progress=not args.quiet,
    )
    bags = featurizer.fit_transform(list(manifest["slide_path"]))
    files, tiles = [], []
    for bag in bags:
        ok = bag is not None
        files.append(os.path.relpath(bag.meta["feature_file"], out) if ok else "")
        tiles.append(bag.n_tiles if ok else 0)
    index = manifest.assign(feature_file=files, n_tiles=tiles)
    _atomic_csv(index, out / INDEX_NAME, index=False)
    failed = getattr(featurizer, "failed_slides_", {})
    first = next((b for b in bags if b is not None), None)
    if first is not None:
        _echo(
            args,
            f"Backbone {first.meta['backbone']}, weights {first.meta['weights']}, "
            f"{first.meta['precision']}; tiles of {args.tile_size} px at "
            f"{first.meta['mpp']:.3g} µm/px.",
        )
    _echo(
        args,
        f"Featurized {len(bags) - len(failed)} of {len(bags)} slides "
        f"({sum(tiles)} tiles) into {out}/; index: {out / INDEX_NAME}",
    )
    for path, error in failed.items():
        print(f"  skipped {path}: {error}")
    return 1 if failed and args.on_error == "skip" and len(failed) == len(bags) else 0


# -- shared by fit / evaluate ------------------------------------------------------------
def _load_training(args):
    from .. import load_bags
    from ..datasets import load_expression

    index = read_index(args.features)
    try:
        data = load_expression(
            args.expression,
            log_transform=args.log_transform,
            drop_zero_median=args.drop_zero_median,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    expression = data.expression
    if args.genes:
        genes = [g.strip() for g in args.genes.split(",") if g.strip()]
        unknown = [g for g in genes if g not in expression.columns]
        if unknown:
            raise CLIError(f"Genes not in the expression table: {unknown[:10]}.")
        expression = expression[genes]
    Y = match_expression(index, expression, args.match)
    bags = load_bags(list(index["feature_file"]), lazy=True)
    return index, bags, Y


def _make_model(args):
    from sklearn.pipeline import make_pipeline

    from ..bags import SuperTiles
    from ..model import KS_ALL_TILES, KS_SUPER_TILES, HE2RNARegressor

    ks = KS_SUPER_TILES if args.super_tiles else KS_ALL_TILES
    regressor = HE2RNARegressor(
        hidden_layer_sizes=tuple(args.hidden),
        ks=ks,
        max_epochs=args.epochs,
        lr=args.lr,
        patience=args.patience,
        validation_fraction=args.validation_fraction or None,
        random_state=args.seed,
        verbose=args.verbose,
    )
    if args.super_tiles:
        return make_pipeline(
            SuperTiles(n_clusters=args.super_tiles, random_state=args.seed), regressor
        )
    return make_pipeline(regressor)


# -- fit ---------------------------------------------------------------------------------
def cmd_fit(args):
    index, bags, Y = _load_training(args)
    model = _make_model(args)
    _echo(
        args,
        f"Fitting HE2RNA on {len(bags)} slides ({index['patient_id'].nunique()} "
        f"patients), {Y.shape[1]} genes...",
    )
    model.fit(bags, Y, he2rnaregressor__groups=index["patient_id"].to_numpy())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    joblib.dump(
        {
            "model": model,
            "package_version": __version__,
            "genes": list(Y.columns),
            "n_features": bags[0].shape[1],
        },
        tmp,
    )
    os.replace(tmp, out)
    reg = model[-1]
    best = f", validation mean r {reg.best_score_:.3f}" if reg.best_score_ is not None else ""
    _echo(args, f"Saved {out} (best epoch {reg.best_epoch_}{best}).")
    return 0


def _load_model(path):
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"Model file not found: '{path}'.")
    try:
        saved = joblib.load(path)
    except Exception as exc:
        raise CLIError(f"Cannot load model '{path}': {exc}") from exc
    if not isinstance(saved, dict) or "model" not in saved:
        raise CLIError(f"'{path}' is not a model saved by 'he2rna fit'.")
    return saved


# -- predict -----------------------------------------------------------------------------
def cmd_predict(args):
    from .. import load_bags

    saved = _load_model(args.model)
    index = read_index(args.features)
    bags = load_bags(list(index["feature_file"]), lazy=True)
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


# -- evaluate ----------------------------------------------------------------------------
def cmd_evaluate(args):
    from ..evaluation import cross_validate_genes

    index, bags, Y = _load_training(args)
    groups = index["patient_id"].to_numpy()
    n_patients = len(np.unique(groups))
    if n_patients < args.folds:
        raise CLIError(f"{n_patients} patients are too few for --folds {args.folds}.")
    _echo(
        args,
        f"{args.folds}-fold cross-validation by patient: {len(bags)} slides, "
        f"{n_patients} patients, {Y.shape[1]} genes.",
    )
    model = _make_model(args)
    result = cross_validate_genes(model, bags, Y, groups, cv=args.folds, n_jobs=args.jobs)
    out = Path(args.out)
    _atomic_csv(result.pooled, out)
    _atomic_csv(result.per_fold, out.with_name(out.stem + "_per_fold.csv"), index=False)
    _atomic_csv(
        result.predictions.rename_axis("sample_id"), out.with_name(out.stem + "_predictions.csv")
    )
    s = result.summary
    _echo(
        args,
        f"Mean r over genes: {s['mean_r_folds']:.3f} (per fold), "
        f"{s['mean_r_pooled']:.3f} (pooled). Well predicted at alpha={s['alpha']}: "
        f"{s['well_predicted_holm']} genes (Holm), {s['well_predicted_bh']} (BH).",
    )
    _echo(args, f"Per-gene report: {out}")
    return 0


# -- heatmap -----------------------------------------------------------------------------
def cmd_heatmap(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import load_bags
    from ..spatial import plot_tile_heatmap

    saved = _load_model(args.model)
    index = read_index(args.features)
    rows = index[index["sample_id"] == args.slide]
    if rows.empty:
        raise CLIError(
            f"Slide '{args.slide}' is not in the feature index "
            f"(e.g. {index['sample_id'].tolist()[:3]})."
        )
    row = rows.iloc[0]
    [bag] = load_bags([row["feature_file"]])
    model = saved["model"]
    genes = [g.strip() for g in args.gene.split(",")]
    for step in model[:-1]:
        [bag] = step.transform([bag])
    try:
        scores = model[-1].predict_tiles(bag, genes[0] if len(genes) == 1 else genes)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    slide_path = args.slide_path or row.get("slide_path") or None
    label = genes[0] if len(genes) == 1 else f"gene set ({len(genes)}, mean z)"
    ax = plot_tile_heatmap(bag, scores, slide_path=slide_path, label=label)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    _echo(args, f"Heatmap of {label} on {args.slide}: {out}")
    return 0


# -- index -------------------------------------------------------------------------------
def cmd_index(args):
    """Index feature files made by other tools, for fit/evaluate/predict/heatmap."""
    import warnings

    from ..features import build_index

    out = Path(args.out) if args.out else Path(args.features) / INDEX_NAME
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = build_index(args.features, args.manifest, out=out, on_missing=args.on_missing)
    for w in caught:
        print(f"he2rna index: warning: {w.message}")
    if out.is_dir() or not out.suffix:
        out = out / INDEX_NAME
    _echo(
        args,
        f"Indexed {len(index)} slides ({index['patient_id'].nunique()} patients, "
        f"{int(index['n_tiles'].sum())} tiles of {int(index['n_features'].max())} features): "
        f"{out}",
    )
    return 0


# -- demo --------------------------------------------------------------------------------
def cmd_demo(args):
    from .._demo import run_demo

    run_demo(
        args.out,
        n_patients=args.n_patients,
        backbone=args.backbone,
        weights=args.weights,
        random_state=args.seed,
        progress=not args.quiet,
    )
    return 0
