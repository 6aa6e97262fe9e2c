"""The end-to-end demo: synthetic slides -> features -> HE2RNA -> genes, MSI, heatmap."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from ._io import atomic_write
from .datasets import make_synthetic_cohort, tile_classes
from .features import SlideFeaturizer
from .metrics import pearson_per_gene
from .model import KS_ALL_TILES, HE2RNARegressor
from .spatial import plot_tile_heatmap, slide_thumbnail, spatial_auc

__all__ = ["run_demo"]

MARKER = "CD3E"


def _fold_models(bags, Y, msi, groups, n_splits, random_state, progress):
    """Patient-grouped CV: per fold, HE2RNA on expression, then MSI from its embedding."""
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    oof_expr = np.zeros(Y.shape, dtype=np.float32)
    oof_msi = np.zeros(len(bags))
    fold_of = np.zeros(len(bags), dtype=int)
    models = []
    splits = list(cv.split(np.zeros(len(bags)), msi, groups))
    for fold, (train, test) in enumerate(
        tqdm(splits, desc="Cross-validating (folds)", unit="fold", disable=not progress)
    ):
        train_bags = [bags[i] for i in train]
        test_bags = [bags[i] for i in test]
        reg = HE2RNARegressor(
            validation_fraction=0.15, patience=25, ks=KS_ALL_TILES, random_state=random_state + fold
        )
        reg.fit(train_bags, Y.iloc[train], groups=groups[train])  # a DataFrame: gene names
        oof_expr[test] = reg.predict(test_bags)
        if len(np.unique(msi[train])) < 2:  # tiny cohorts: a fold may lack MSI-H patients
            oof_msi[test] = msi[train].mean()
        else:
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
            clf.fit(reg.transform(train_bags), msi[train])
            oof_msi[test] = clf.predict_proba(reg.transform(test_bags))[:, 1]
        fold_of[test] = fold
        models.append(reg)
    return oof_expr, oof_msi, fold_of, models


def run_demo(
    out_dir="he2rna-demo",
    *,
    n_patients=48,
    backbone="resnet18",
    weights=None,
    mpp=1.0,
    tile_size=112,
    n_splits=5,
    random_state=0,
    progress=True,
    echo=print,
):
    """Run the whole HE2RNA job offline on a synthetic cohort and report.

    Writes under ``out_dir``: the slides, their features (HDF5 cache) with the feature
    index ``features/index.csv``, the manifest ``slides.csv`` and the expression table
    ``expression.csv`` (so that the ``he2rna`` commands continue from the folder; they are
    printed at the end), ``gene_correlations.csv``, ``msi_predictions.csv`` and
    ``heatmap_<gene>.png``.

    Returns
    -------
    results : sklearn.utils.Bunch
        ``gene_r`` (DataFrame: gene, program, r), ``composition_r``, ``noise_r``,
        ``msi_auc``, ``msi_auc_patient``, ``spatial_auc``, ``heatmap`` (path),
        ``next_commands`` (list of str), ``seconds``.
    """
    start = time.perf_counter()
    if n_patients < 2 * n_splits:
        raise ValueError(
            f"n_patients={n_patients} is too few for {n_splits}-fold cross-validation by "
            f"patient; use at least {2 * n_splits}."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    echo(
        "he2rna-sklearn demo: synthetic slides -> tile features -> HE2RNA -> per-gene r, "
        "MSI, heatmap"
    )
    cohort = make_synthetic_cohort(
        n_patients=n_patients, out_dir=out / "slides", random_state=random_state, progress=progress
    )
    echo(cohort.DESCR)
    bags = _featurize(cohort, out, backbone, weights, mpp, tile_size, random_state, progress, echo)
    _write_cli_inputs(cohort, bags, out)

    msi = (cohort.msi.to_numpy() == "MSI-H").astype(int)
    oof_expr, oof_msi, fold_of, models = _fold_models(
        bags, cohort.expression, msi, cohort.patient_ids, n_splits, random_state, progress
    )
    results = Bunch(n_splits=n_splits, n_msi=int(msi.sum()), n_slides=len(msi))
    results.update(_gene_results(cohort, oof_expr, fold_of, n_splits, out))
    results.update(_msi_results(cohort, msi, oof_msi, fold_of, out))
    results.update(_spatial_results(cohort, bags, models, fold_of, out))
    results.next_commands = _next_commands(out, results.heatmap_slide, MARKER)
    _print_results(results, echo)
    results.seconds = time.perf_counter() - start
    echo(
        f"\nDone in {results.seconds:.0f} s. Outputs in {os.fspath(out)}/: slides/, features/ "
        f"(with index.csv), slides.csv, expression.csv, gene_correlations.csv, "
        f"msi_predictions.csv, {results.heatmap.name}"
    )
    echo("\nContinue from this folder with the command line:")
    for command in results.next_commands:
        echo(f"  {command}")
    return results


def _featurize(cohort, out, backbone, weights, mpp, tile_size, random_state, progress, echo):
    featurizer = SlideFeaturizer(
        backbone=backbone,
        weights=weights,
        mpp=mpp,
        tile_size=tile_size,
        cache_dir=out / "features",
        random_state=random_state,
        progress=progress,
    )
    runner = featurizer.build_runner()
    echo(
        f"Backbone: {runner.backbone.name}, weights: {runner.backbone.weights_id}, "
        f"precision: {runner.precision}, device: {runner.device}; tiles of {tile_size} px at "
        f"{mpp} µm/px."
    )
    if weights is None:
        echo(
            "  (No pretrained weights are used, so the demo runs offline: a randomly "
            "initialised CNN still separates these tissue textures. The paper's setting is "
            "backbone='resnet50', weights='imagenet'.)"
        )
    bags = featurizer.fit_transform(cohort.slide_paths)
    n_tiles = np.array([b.n_tiles for b in bags])
    echo(
        f"Featurized {len(bags)} slides: {n_tiles.sum()} tiles ({n_tiles.min()}-"
        f"{n_tiles.max()} per slide), {bags[0].n_features} features per tile."
    )
    return bags


def _write_csv(table, path, **kwargs):
    with atomic_write(path) as tmp:
        table.to_csv(tmp, **kwargs)
    return path


def _write_cli_inputs(cohort, bags, out):
    """The manifest, expression table and feature index the ``he2rna`` commands read."""
    from .cli._manifest import index_table, write_index

    manifest = pd.DataFrame(
        {
            "slide_path": [os.path.relpath(p, out) for p in cohort.slide_paths],
            "sample_id": cohort.slide_ids,
            "patient_id": cohort.patient_ids,
        }
    )
    _write_csv(manifest, out / "slides.csv", index=False)
    # samples x genes, already on the log10(1 + x) scale
    _write_csv(cohort.expression.rename_axis("sample_id"), out / "expression.csv")
    absolute = manifest.assign(slide_path=list(cohort.slide_paths))
    write_index(index_table(absolute, bags, out / "features"), out / "features")


def _gene_results(cohort, oof_expr, fold_of, n_splits, out):
    # The paper's protocol: Pearson r per gene on each test fold, averaged over folds.
    # (Correlations of pooled out-of-fold predictions mix the folds' offsets and are biased
    # negative for unpredictable genes on small cohorts; they are saved for reference.)
    Y = cohort.expression.to_numpy(dtype=np.float32)
    per_fold = np.array(
        [pearson_per_gene(Y[fold_of == f], oof_expr[fold_of == f]) for f in range(n_splits)]
    )
    gene_r = pd.DataFrame(
        {
            "gene": cohort.expression.columns,
            "program": cohort.genes["program"].to_numpy(),
            "r": np.nanmean(per_fold, axis=0),
            "r_pooled": pearson_per_gene(Y, oof_expr),
        }
    )
    _write_csv(gene_r, out / "gene_correlations.csv", index=False)
    is_noise = gene_r["program"] == "noise"
    return Bunch(
        gene_r=gene_r,
        composition_r=float(gene_r.loc[~is_noise, "r"].mean()),
        noise_r=float(gene_r.loc[is_noise, "r"].mean()),
    )


def _msi_results(cohort, msi, oof_msi, fold_of, out):
    groups = cohort.patient_ids
    by_patient = pd.DataFrame({"patient": groups, "msi": msi, "p": oof_msi}).groupby("patient")
    pat = by_patient.agg(msi=("msi", "first"), p=("p", "mean"))
    if 0 < msi.sum() < len(msi):
        msi_auc = float(roc_auc_score(msi, oof_msi))
        msi_auc_patient = float(roc_auc_score(pat["msi"], pat["p"]))
    else:
        msi_auc = msi_auc_patient = float("nan")
    table = pd.DataFrame(
        {
            "slide_id": cohort.slide_ids,
            "patient_id": groups,
            "msi": cohort.msi.to_numpy(),
            "p_msi": oof_msi,
            "fold": fold_of,
        }
    )
    _write_csv(table, out / "msi_predictions.csv", index=False)
    return Bunch(msi_auc=msi_auc, msi_auc_patient=msi_auc_patient)


def _spatial_results(cohort, bags, models, fold_of, out):
    """Virtual spatialization of a T-cell marker: where its tile scores fall, and a heatmap
    of a held-out slide with lymphoid aggregates among other tissue (lymphoid fraction
    nearest 30%)."""
    lymphoid_class = cohort.class_names.index("lymphoid")
    auc_values = []
    for i, b in enumerate(bags):
        labels = tile_classes(b.coords, b.meta["extent"], cohort.class_maps[i], cohort.cell_size)
        if 0 < (labels == lymphoid_class).sum() < len(labels):
            tile_scores = models[fold_of[i]].predict_tiles(b, MARKER)
            auc_values.append(spatial_auc(tile_scores, labels, lymphoid_class))
    lymph = cohort.composition["lymphoid"].to_numpy()
    s = int(np.argmin(np.abs(lymph - 0.3)))
    heatmap = _plot_heatmap(cohort, bags[s], models[fold_of[s]], s, lymphoid_class, out)
    return Bunch(
        spatial_auc=float(np.mean(auc_values)) if auc_values else float("nan"),
        heatmap=heatmap,
        heatmap_slide=str(bags[s].slide_id),
    )


def _plot_heatmap(cohort, bag, model, s, lymphoid_class, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = model.predict_tiles(bag, MARKER)
    fig, axes = plt.subplots(1, 2, figsize=(14, 6))
    plot_tile_heatmap(bag, scores, label=f"{MARKER} tile score", ax=axes[0])
    axes[0].set_title(f"{MARKER} tile scores (held-out slide {bag.slide_id})")
    thumb, _ = slide_thumbnail(bag.meta["slide_path"])
    axes[1].imshow(thumb)
    lymphoid = cohort.class_maps[s] == lymphoid_class
    truth = np.ma.masked_where(~lymphoid, np.ones(lymphoid.shape))
    axes[1].imshow(
        truth,
        cmap="Blues",
        alpha=0.55,
        vmin=0,
        vmax=1,
        extent=(0, thumb.shape[1], thumb.shape[0], 0),
        interpolation="nearest",
    )
    axes[1].set_title("ground truth: lymphoid regions (blue)")
    axes[1].set_axis_off()
    fig.tight_layout()
    heatmap = out / f"heatmap_{MARKER}.png"
    with atomic_write(heatmap) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return heatmap


def _next_commands(out, slide, gene):
    """``he2rna`` commands that continue from the demo's folder."""
    d = shlex.quote(os.fspath(out))
    features, model = f"{d}/features", f"{d}/model.skops"
    return [
        f"he2rna fit --features {features} --expression {d}/expression.csv --out {model}",
        f"he2rna predict --model {model} --features {features} --out {d}/predictions.csv",
        f"he2rna heatmap --model {model} --features {features} --slide {shlex.quote(slide)} "
        f"--gene {gene} --out {d}/heatmap_{gene}_cli.png",
        f"he2rna evaluate --features {features} --expression {d}/expression.csv --folds 5 "
        f"--out {d}/genes.csv",
    ]


def _print_results(r, echo):
    """The demo's report: one block per result (genes, MSI, spatialization)."""
    echo(
        f"\nHeld-out per-gene Pearson r ({r.n_splits}-fold CV grouped by patient; r on each "
        "test fold, averaged over folds):"
    )
    summary = r.gene_r.groupby("program", sort=False)["r"].agg(["count", "mean", "min", "max"])
    echo(summary.round(3).to_string())
    echo(f"  composition-driven genes: mean r = {r.composition_r:.3f}")
    echo(f"  noise genes:              mean r = {r.noise_r:+.3f}")
    echo(
        f"\nMSI from the HE2RNA embedding (LogisticRegression, same folds, {r.n_msi} "
        f"MSI-H of {r.n_slides} slides): ROC AUC = {r.msi_auc:.3f} per slide, "
        f"{r.msi_auc_patient:.3f} per patient."
    )
    echo(
        f"\nTile scores of {MARKER} vs true lymphoid tiles (held-out slides): mean ROC AUC = "
        f"{r.spatial_auc:.3f}. Heatmap: {os.fspath(r.heatmap)}"
    )
