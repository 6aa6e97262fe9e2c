"""The ``he2rna`` subcommands."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_write, check_output_path
from ..evaluation import fit_params_for
from ..features import (
    INDEX_NAME,
    check_index_compatible,
    index_from_bags,
    read_index,
    read_manifest,
    update_index,
)
from ..persistence import load_model, save_model
from ._inputs import CLIError, check_bags_match_index, match_expression

__all__ = [
    "cmd_demo",
    "cmd_evaluate",
    "cmd_export",
    "cmd_featurize",
    "cmd_fit",
    "cmd_heatmap",
    "cmd_index",
    "cmd_predict",
]


def _echo(args, text):
    """Report a result (``--quiet`` silences progress bars, not results)."""
    print(text)


def _note(args, text):
    """A warning line on stderr (the results stay on stdout)."""
    print(f"he2rna {args.command}: warning: {text}", file=sys.stderr)


def _atomic_csv(table, path, **kwargs):
    with atomic_write(path) as tmp:
        table.to_csv(tmp, **kwargs)
    return Path(path)


def _parameters(args, estimator):
    """The parameters of ``estimator`` set on the command line (each option is stored
    under the name of the parameter it sets)."""
    names = estimator().get_params()
    return {k: v for k, v in vars(args).items() if k in names}


def _same_file(a, b):
    try:
        return os.path.realpath(a) == os.path.realpath(b) or os.path.samefile(a, b)
    except OSError:
        return False


def _inputs(args):
    """The files a command reads (named by option), so that no output overwrites one."""
    found = []
    for option in ("manifest", "expression", "model", "slide_path"):
        value = getattr(args, option, None)
        if value:
            found.append((value, f"--{option.replace('_', '-')}"))
    for value in getattr(args, "slides", None) or []:
        found.append((value, "a slide"))
    features = getattr(args, "features", None)
    if features:
        index = Path(features) / INDEX_NAME if Path(features).is_dir() else Path(features)
        found.append((index, "--features (its index)"))
        try:
            table = read_index(index, raw=True)
        except (OSError, ValueError):  # reported where the index is read
            table = pd.DataFrame()
        for column, what in (("feature_file", "a feature file"), ("slide_path", "a slide")):
            for value in table.get(column, []):
                if value:
                    found.append((Path(index).parent / value, f"{what} of --features"))
    return found


def _check_outputs(*paths, args=None):
    """Check every output file before any work (a failure then loses nothing), and that
    none of them is one of the command's inputs."""
    inputs = [p for p in (_inputs(args) if args is not None else []) if Path(p[0]).is_file()]
    for path, option in paths:
        try:
            check_output_path(path, option)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        if not Path(path).is_file():
            continue
        for source, what in inputs:
            if _same_file(path, source):
                raise CLIError(
                    f"{option} '{path}' is {what} this command reads ('{source}'): writing "
                    "it would overwrite that input. Give another file name."
                )


# -- featurize ---------------------------------------------------------------------------
def cmd_featurize(args):
    from ..features import SlideFeaturizer

    if bool(args.slides) == bool(args.manifest):
        raise CLIError("Give slide files or --manifest CSV (one of the two).")
    manifest = read_manifest(args.manifest or args.slides)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out '{out}' is a file; featurize writes a folder.")
    _check_outputs((out / INDEX_NAME, "--out"), args=args)
    featurizer = SlideFeaturizer(
        **_parameters(args, SlideFeaturizer), cache_dir=out, lazy=True, progress=not args.quiet
    )
    featurizer.fit()  # parameter errors before any work
    if (out / INDEX_NAME).is_file():  # features of another kind: refused before any work
        runner = featurizer.build_runner()
        check_index_compatible(
            out,
            {
                "backbone": runner.backbone.name,
                "weights": runner.backbone.weights_id,
                "tile_size": featurizer.tile_size,
                "mpp": featurizer.feature_spec().mpp,
            },
        )
        del runner
    bags = featurizer.fit_transform(list(manifest["slide_path"]))
    first = next((b for b in bags if b is not None), None)
    # merged into the index on disk now (under a lock): runs into one --out add up
    index, n_before = update_index(
        out, index_from_bags(manifest, bags, out), None if first is None else first.meta
    )
    kept = len(index) - len(manifest)
    if kept:
        _echo(args, f"{kept} of the {n_before} slides already in {out / INDEX_NAME} kept.")
    failed = getattr(featurizer, "failed_slides_", {})
    if first is not None:
        _echo(
            args,
            f"Backbone {first.meta['backbone']}, weights {first.meta['weights']}, "
            f"{first.meta['precision']}; tiles of {args.tile_size} px at "
            f"{first.meta['mpp']:.3g} µm/px.",
        )
    n_tiles = sum(b.n_tiles for b in bags if b is not None)
    _echo(
        args,
        f"Featurized {len(bags) - len(failed)} of {len(bags)} slides "
        f"({n_tiles} tiles) into {out}/; index: {out / INDEX_NAME} ({len(index)} slides)",
    )
    empty = [s for s, b in zip(manifest["sample_id"], bags) if b is not None and not b.n_tiles]
    if empty:
        _note(args, f"no tissue tiles in {len(empty)} slides: {empty[:10]}")
    for path, error in failed.items():
        print(f"  skipped {path}: {error}")
    return 1 if failed and args.on_error == "skip" and len(failed) == len(bags) else 0


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


def _slide_mpps(args, index, slide_mpp=None):
    """Level-0 µm per pixel by feature file: ``slide_mpp`` (or ``--slide-mpp``) for all,
    else the index's ``slide_mpp`` column (``he2rna index --slide-mpp``); None if neither."""
    given = slide_mpp if slide_mpp is not None else getattr(args, "slide_mpp", None)
    column = index["slide_mpp"] if "slide_mpp" in index else [""] * len(index)
    by_file = {}
    for f, value in zip(index["feature_file"], column):
        if given is not None:
            by_file[os.fspath(f)] = float(given)
        elif str(value).strip() and str(value) != "nan":
            by_file[os.fspath(f)] = float(value)
    return by_file or None


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


def _load_bags(args, index, source, slide_mpp=None):
    """The index's bags (lazy, checksums verified), checked against its rows. Coordinates
    in µm (STAMP) stay so without a slide µm/px: they serve super-tiles as well, and the
    commands that place tiles on a slide (heatmap) resolve them."""
    from .. import load_bags

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".* in µm", category=UserWarning)
        bags = load_bags(
            list(index["feature_file"]),
            lazy=True,
            verify=True,
            slide_mpp=_slide_mpps(args, index, slide_mpp),
        )
    check_bags_match_index(index, bags, source)
    return bags


def _without_empty(args, index, bags, what):
    """Drop the slides without tissue tiles, naming them."""
    keep = [b.n_tiles > 0 for b in bags]
    if all(keep):
        return index, bags
    empty = index.loc[[not k for k in keep], "sample_id"].tolist()
    _note(args, f"{len(empty)} slides have no tissue tiles and are left out of {what}: {empty}")
    if not any(keep):
        raise CLIError(f"No slide of '{args.features}' has tissue tiles.")
    return index[keep].reset_index(drop=True), [b for b, k in zip(bags, keep) if k]


# -- shared by fit / evaluate ------------------------------------------------------------
def _load_training(args, what):
    from ..datasets import load_expression

    index = read_index(args.features)
    try:
        data = load_expression(
            args.expression,
            orient=args.orient,
            log_transform=args.log_transform,
            drop_zero_median=args.drop_zero_median,
            sample_ids=list(index["sample_id"]),
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
    try:
        Y = match_expression(index, expression, args.match)
    except CLIError as exc:
        layout = data.orient.replace("_x_", " x ").replace("_", " ")
        flip = "samples_x_genes" if data.orient == "genes_x_samples" else "genes_x_samples"
        raise CLIError(
            f"{exc} '{args.expression}' was read as {layout} (its samples: "
            f"{list(expression.index[:3])}); if that is wrong, pass --orient {flip}."
        ) from None
    bags = _load_bags(args, index, f"'{args.features}'")
    index, bags = _without_empty(args, index, bags, what)
    if args.n_clusters and args.cluster_on == "coords":
        lacking = [f for f, b in zip(index["feature_file"], bags) if b.coords is None]
        if lacking:
            raise CLIError(
                f"{len(lacking)} feature files of '{args.features}' have no tile coordinates "
                f"(e.g. '{lacking[0]}', .pt files have none), and --super-tiles clusters tiles "
                "by position: add --cluster-on features to cluster them by their features."
            )
    return index, bags, Y.loc[index["sample_id"]]


def _ks_for(n_clusters):
    """The top-k values of ``he2rna fit`` and ``evaluate`` with ``--tile-types none``: the
    paper's for the bags trained on, ``KS_SUPER_TILES`` with ``--super-tiles`` and
    ``KS_ALL_TILES`` without, instead of the regressor's default ``KS_DEFAULT`` (the two
    sets together); docs/cli.rst says so."""
    from ..model import KS_ALL_TILES, KS_SUPER_TILES

    return KS_SUPER_TILES if n_clusters else KS_ALL_TILES


def _make_model(args):
    from sklearn.pipeline import make_pipeline

    from ..bags import SuperTiles
    from ..model import HE2RNARegressor

    params = _parameters(args, HE2RNARegressor)
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    params["validation_fraction"] = params["validation_fraction"] or None
    if params.get("tile_types") is None:  # the paper's network: its ks for these bags
        params["ks"] = _ks_for(args.n_clusters)
    regressor = HE2RNARegressor(**params)
    if args.n_clusters:
        super_tiles = SuperTiles(
            n_clusters=args.n_clusters, cluster_on=args.cluster_on, random_state=args.random_state
        )
        return make_pipeline(super_tiles, regressor)
    return make_pipeline(regressor)


# -- fit ---------------------------------------------------------------------------------
def cmd_fit(args):
    _check_outputs((args.out, "--out"), args=args)
    if args.save_pretrained:
        _check_pretrained_output(args)
    index, bags, Y = _load_training(args, "training")
    model = _make_model(args)
    _echo(
        args,
        f"Fitting HE2RNA on {len(bags)} slides ({index['patient_id'].nunique()} "
        f"patients), {Y.shape[1]} genes...",
    )
    model.fit(bags, Y, **fit_params_for(model, groups=index["patient_id"].to_numpy()))
    out = Path(args.out)
    metadata = {"genes": [str(g) for g in Y.columns], "n_features": int(bags[0].shape[1])}
    save_model(model, out, metadata=metadata)
    reg = model[-1]
    best = f", validation mean r {reg.best_score_:.3f}" if reg.best_score_ is not None else ""
    _echo(args, f"Saved {out} (best epoch {reg.best_epoch_}{best}).")
    if args.save_pretrained:
        _save_pretrained(args, model, index, Y)
    if getattr(reg, "validation_predictions_", None) is not None:
        _echo(args, _baseline_line(reg, bags, Y, index["patient_id"].to_numpy()))
    return 0


def _check_pretrained_output(args):
    """``--save-pretrained DIR``, checked before any work."""
    from ..model import check_pretrained_folder

    folder = Path(args.save_pretrained)
    if folder.resolve() == Path(args.out).resolve():
        raise CLIError("--save-pretrained names the --out file; give a folder of its own.")
    check_pretrained_folder(folder)


def _save_pretrained(args, model, index, Y):
    """The fitted model (its SuperTiles step too) as a Hugging Face-style folder."""
    from ..model import save_pretrained

    description = (
        f"Fitted by `he2rna fit` on {len(index)} slides ({index['patient_id'].nunique()} "
        f"patients) and {Y.shape[1]} genes of `{Path(args.expression).name}`."
    )
    folder = save_pretrained(
        model if len(model) > 1 else model[-1], args.save_pretrained, description=description
    )
    _echo(
        args,
        f"Saved {folder}/ (safetensors and JSON, no pickle; he2rna predict --model {folder}).",
    )


def _baseline_line(reg, bags, Y, groups):
    """The tuned linear baseline beside HE2RNA on the slides HE2RNA validated on: fitted on
    the other slides, with a bootstrap interval over the validation patients."""
    from ..evaluation import compare_genes, fit_params_for, tuned_linear_baseline
    from ..metrics import mean_gene_correlation

    valid = reg.validation_indices_
    train = np.setdiff1d(np.arange(len(bags)), valid)
    Y = np.asarray(Y, dtype=np.float64)
    baseline = tuned_linear_baseline()
    baseline.fit(
        [bags[i] for i in train], Y[train], **fit_params_for(baseline, groups=groups[train])
    )
    base_pred = baseline.predict([bags[i] for i in valid])
    pred = reg.validation_predictions_
    r_base, r_model = (mean_gene_correlation(Y[valid], p) for p in (base_pred, pred))
    head = (
        f"Tuned linear baseline ({baseline[-1].description_}, chosen by inner CV) on the same "
        f"{len(valid)} validation slides: mean r {r_base:.3f}, HE2RNA {r_model:.3f}"
    )
    n_patients = len(np.unique(groups[valid]))
    if n_patients < 4:
        verdict = (
            f"{n_patients} validation patients are too few to tell them apart; "
            "'he2rna evaluate' compares the two by cross-validation."
        )
    else:
        result = compare_genes(Y[valid], pred, base_pred, groups[valid], figure="mean_r")
        verdict = (
            f"HE2RNA is {result.verdict}. 'he2rna evaluate' compares the two by "
            "cross-validation on every slide."
        )
    return f"{head}; {verdict}"


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


# -- evaluate ----------------------------------------------------------------------------
def _evaluate_outputs(out):
    stem = out.stem
    return (
        out,
        out.with_name(stem + "_per_fold.csv"),
        out.with_name(stem + "_predictions.csv"),
        out.with_name(stem + "_vs_baseline.csv"),
    )


def cmd_evaluate(args):
    from ..evaluation import compare_to_baseline

    out = Path(args.out)
    _check_outputs(*[(p, "--out") for p in _evaluate_outputs(out)], args=args)
    if args.folds < 2:  # the parser refuses it; a caller of cmd_evaluate may not
        raise CLIError(f"--folds must be at least 2, got {args.folds}.")
    index, bags, Y = _load_training(args, "the evaluation")
    groups = index["patient_id"].to_numpy()
    n_patients = len(np.unique(groups))
    if n_patients < args.folds:
        raise CLIError(f"{n_patients} patients are too few for --folds {args.folds}.")
    _echo(
        args,
        f"{args.folds}-fold cross-validation by patient: {len(bags)} slides, "
        f"{n_patients} patients, {Y.shape[1]} genes; the same folds for HE2RNA and the "
        "tuned linear baseline (ridge, PCA-r + ridge or reduced-rank ridge on mean-pooled "
        "features, chosen per fold by inner CV on the training patients).",
    )
    model = _make_model(args)
    both = compare_to_baseline(model, bags, Y, groups, cv=args.folds, n_jobs=args.n_jobs)
    result = both.model
    out, per_fold, predictions, comparison = _evaluate_outputs(out)
    _atomic_csv(result.pooled, out)
    _atomic_csv(result.per_fold, per_fold, index=False)
    _atomic_csv(result.predictions.rename_axis("sample_id"), predictions)
    _atomic_csv(both.table, comparison)
    table = both.table.copy()
    table.iloc[:2] = table.iloc[:2].round(3)
    _echo(args, table.to_string())
    _echo(args, both.verdict)
    _echo(args, f"Per-gene report: {out}; comparison: {comparison}")
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


# -- index -------------------------------------------------------------------------------
def cmd_index(args):
    """Index feature files made by other tools, for fit/evaluate/predict/heatmap."""
    import argparse

    from ..features import build_index

    out = Path(args.out) if args.out else Path(args.features) / INDEX_NAME
    if out.is_dir() or not out.suffix:
        out = out / INDEX_NAME
    _check_outputs((out, "--out"), args=argparse.Namespace(manifest=args.manifest))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = build_index(
            args.features,
            args.manifest,
            out=out,
            on_missing=args.on_missing,
            slide_mpp=args.slide_mpp,
        )
    for w in caught:
        warnings.warn(str(w.message), w.category, stacklevel=1)  # shown the CLI's way
    _echo(
        args,
        f"Indexed {len(index)} slides ({index['patient_id'].nunique()} patients, "
        f"{int(index['n_tiles'].sum())} tiles of {int(index['n_features'].max())} features): "
        f"{out}",
    )
    return 0


# -- export ------------------------------------------------------------------------------
def cmd_export(args):
    """Write a features folder in the layout of TRIDENT, CLAM or STAMP."""
    from ..features import export_features

    try:
        written = export_features(
            args.features, args.out, args.layout, slide_mpp=getattr(args, "slide_mpp", None)
        )
    except ValueError as exc:
        message = str(exc).replace(
            "(slide_mpp=...)", "(--slide-mpp, or 'he2rna index --slide-mpp')"
        )
        raise CLIError(message) from None
    index = read_index(args.features)
    left = len(index) - len(written)
    note = f"; {left} slides without tiles left out, as STAMP does" if left else ""
    first = Path(written["path"].iloc[0]).parent if len(written) else Path(args.out)
    _echo(
        args,
        f"Exported {len(written)} slides in {args.layout.upper()}'s layout into {args.out}/ "
        f"(feature files in {first}/){note}.",
    )
    return 0


# -- demo --------------------------------------------------------------------------------
def cmd_demo(args):
    from .._demo import run_demo

    run_demo(
        args.out_dir,
        n_patients=args.n_patients,
        backbone=args.backbone,
        weights=args.weights,
        random_state=args.random_state,
        progress=not args.quiet,
    )
    return 0
