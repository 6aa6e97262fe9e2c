"""The ``he2rna`` subcommands: ``main`` runs ``cmd_<command>`` of this module.

``fit`` and ``evaluate`` (which share reading the training data and building the model) and
``demo`` are here; ``featurize``, ``index`` and ``export`` are in :mod:`._feature_commands`,
``predict`` and ``heatmap`` in :mod:`._predict_commands`, and what they all share in
:mod:`._command_io`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..evaluation import fit_params_for
from ..features import read_index
from ..persistence import save_model
from ._command_io import (
    _atomic_csv,
    _check_outputs,
    _echo,
    _load_bags,
    _parameters,
    _without_empty,
)
from ._feature_commands import cmd_export, cmd_featurize, cmd_index
from ._inputs import CLIError, match_expression
from ._predict_commands import cmd_heatmap, cmd_predict

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
