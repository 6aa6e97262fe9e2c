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
from .bags import BagPooling
from .datasets import make_synthetic_cohort, tile_classes
from .evaluation import (
    aggregate_by_patient,
    compare_auc,
    compare_genes,
    describe_choices,
    fit_params_for,
    tuned_linear_baseline,
)
from .features import SlideFeaturizer, index_from_bags, write_index
from .metrics import gene_correlations, pearson_per_gene
from .model import HE2RNARegressor
from .spatial import plot_tile_heatmap, slide_thumbnail, spatial_auc

__all__ = ["run_demo"]

MARKER = "CD3E"


def _msi_scores(train_X, train_y, test_X):
    """MSI-H probabilities of ``test_X`` from a logistic regression on ``train_X``."""
    if len(np.unique(train_y)) < 2:  # tiny cohorts: a fold may lack MSI-H patients
        return np.full(len(test_X), train_y.mean())
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
    return clf.fit(train_X, train_y).predict_proba(test_X)[:, 1]


def _fold_models(bags, Y, msi, groups, n_splits, random_state, progress):
    """Patient-grouped CV. Per fold: HE2RNA at its defaults and the tuned linear baseline
    on expression, then MSI from HE2RNA's embedding and from mean-pooled features."""
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    oof = {"he2rna": np.zeros(Y.shape), "ridge": np.zeros(Y.shape)}
    oof_msi = {"he2rna": np.zeros(len(bags)), "ridge": np.zeros(len(bags))}
    fold_of = np.zeros(len(bags), dtype=int)
    models, baselines = [], []
    pooled = BagPooling().fit_transform(bags)
    splits = list(cv.split(np.zeros(len(bags)), msi, groups))
    for fold, (train, test) in enumerate(
        tqdm(splits, desc="Cross-validating (folds)", unit="fold", disable=not progress)
    ):
        train_bags = [bags[i] for i in train]
        test_bags = [bags[i] for i in test]
        reg = HE2RNARegressor(random_state=random_state + fold)  # at its defaults
        reg.fit(train_bags, Y.iloc[train], groups=groups[train])  # a DataFrame: gene names
        ridge = tuned_linear_baseline()
        ridge.fit(train_bags, Y.iloc[train], **fit_params_for(ridge, groups=groups[train]))
        oof["he2rna"][test] = reg.predict(test_bags)
        oof["ridge"][test] = ridge.predict(test_bags)
        emb_train, emb_test = reg.transform(train_bags), reg.transform(test_bags)
        oof_msi["he2rna"][test] = _msi_scores(emb_train, msi[train], emb_test)
        oof_msi["ridge"][test] = _msi_scores(pooled[train], msi[train], pooled[test])
        fold_of[test] = fold
        models.append(reg)
        baselines.append(ridge)
    return oof, oof_msi, fold_of, models, baselines


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

    Writes under ``out_dir`` (a new or empty folder, or an earlier demo's; a folder with
    other files is refused, so that none is overwritten): the slides, their features (HDF5
    cache) with the feature index ``features/index.csv``, the manifest ``slides.csv`` and
    the expression table ``expression.csv`` (so that the ``he2rna`` commands continue from
    the folder; they are printed at the end), ``gene_correlations.csv``, ``msi_predictions.csv`` and
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
    _claim_folder(out)
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
    oof_expr, oof_msi, fold_of, models, baselines = _fold_models(
        bags, cohort.expression, msi, cohort.patient_ids, n_splits, random_state, progress
    )
    results = Bunch(n_splits=n_splits, n_msi=int(msi.sum()), n_slides=len(msi))
    results.update(_gene_results(cohort, oof_expr, fold_of, n_splits, out))
    results.baseline_choice = describe_choices([b[-1].description_ for b in baselines])
    results.update(_msi_results(cohort, msi, oof_msi, fold_of, out))
    results.update(_spatial_results(cohort, bags, models, baselines, fold_of, out))
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


#: The file that marks a folder as the demo's: the demo writes only into a new or empty
#: folder, or one with this mark (an earlier demo's), never among a user's files.
DEMO_MARK = ".he2rna-demo"


def _claim_folder(out):
    """Create ``out`` for the demo, or refuse a folder that holds other files."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir '{out}' is a file; the demo writes a folder.")
    if out.is_dir() and any(out.iterdir()) and not (out / DEMO_MARK).is_file():
        shown = sorted(p.name for p in out.iterdir())[:3]
        raise ValueError(
            f"out_dir '{out}' holds other files ({', '.join(shown)}...) that the demo could "
            "overwrite: give a new or empty folder (an earlier demo's folder is reused)."
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARK).write_text("written by the he2rna-sklearn demo; a rerun may overwrite\n")


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
    write_index(index_from_bags(absolute, bags, out / "features"), out / "features")


def _gene_results(cohort, oof_expr, fold_of, n_splits, out):
    # The paper's protocol: Pearson r per gene on each test fold, averaged over folds, and
    # genes significant after Holm's correction on the pooled out-of-fold predictions.
    Y = cohort.expression.to_numpy(dtype=np.float64)
    program = cohort.genes["program"].to_numpy()
    columns, summary = {}, {}
    for name, pred in oof_expr.items():
        per_fold = np.array(
            [pearson_per_gene(Y[fold_of == f], pred[fold_of == f]) for f in range(n_splits)]
        )
        r = np.nanmean(per_fold, axis=0)
        pooled = gene_correlations(Y, pred, genes=list(cohort.expression.columns))
        columns[f"r_{name}"] = r
        columns[f"r_pooled_{name}"] = pooled["r"].to_numpy()
        summary[name] = {
            "composition": float(np.mean(r[program != "noise"])),
            "noise": float(np.mean(r[program == "noise"])),
            "holm": int((pooled["p_holm"] < 0.05).sum()),
        }
    comparison = compare_genes(Y, oof_expr["he2rna"], oof_expr["ridge"], cohort.patient_ids)
    gene_r = pd.DataFrame({"gene": cohort.expression.columns, "program": program, **columns})
    _write_csv(gene_r, out / "gene_correlations.csv", index=False)
    gene_r["r"] = gene_r["r_he2rna"]
    return Bunch(
        gene_r=gene_r,
        composition_r=summary["he2rna"]["composition"],
        noise_r=summary["he2rna"]["noise"],
        gene_summary=summary,
        gene_comparison=comparison,
    )


def _msi_results(cohort, msi, oof_msi, fold_of, out):
    groups = cohort.patient_ids
    table = pd.DataFrame(
        {
            "slide_id": cohort.slide_ids,
            "patient_id": groups,
            "msi": cohort.msi.to_numpy(),
            "p_msi": oof_msi["he2rna"],
            "p_msi_mean_features": oof_msi["ridge"],
            "fold": fold_of,
        }
    )
    _write_csv(table, out / "msi_predictions.csv", index=False)
    if not 0 < msi.sum() < len(msi):  # one MSI status only: no AUC
        nan = float("nan")
        return Bunch(
            msi_auc=nan, msi_auc_patient=nan, msi_auc_patient_baseline=nan, msi_comparison=None
        )
    # per patient (mean of its slides' scores), HE2RNA's embedding beside mean features
    scores = aggregate_by_patient(table[["p_msi", "p_msi_mean_features"]].to_numpy(), groups)
    comparison = compare_auc(
        aggregate_by_patient(msi, groups, how="max"), scores[0], scores[1], random_state=0
    )
    return Bunch(
        msi_auc=float(roc_auc_score(msi, oof_msi["he2rna"])),
        msi_auc_patient=comparison.auc,
        msi_auc_patient_baseline=comparison.auc_baseline,
        msi_comparison=comparison,
    )


def _linear_tile_scores(baseline, bag, gene):
    """The linear baseline's tile map: its linear model applied to each tile alone (a bag
    of one tile pools to the tile itself)."""
    tiles = np.asarray(bag, dtype=np.float32)[:, None, :]
    return baseline.predict(list(tiles))[:, gene]


def _spatial_results(cohort, bags, models, baselines, fold_of, out):
    """Virtual spatialization of a T-cell marker: where its tile scores fall (for HE2RNA and
    for the linear baseline's map), and a heatmap of a held-out slide with lymphoid
    aggregates among other tissue (lymphoid fraction nearest 30%)."""
    lymphoid_class = cohort.class_names.index("lymphoid")
    gene = list(cohort.expression.columns).index(MARKER)
    auc_values = {"he2rna": [], "ridge": []}
    for i, b in enumerate(bags):
        labels = tile_classes(b.coords, b.meta["extent"], cohort.class_maps[i], cohort.cell_size)
        if 0 < (labels == lymphoid_class).sum() < len(labels):
            tile_scores = models[fold_of[i]].predict_tiles(b, MARKER)
            auc_values["he2rna"].append(spatial_auc(tile_scores, labels, lymphoid_class))
            ridge_scores = _linear_tile_scores(baselines[fold_of[i]], b, gene)
            auc_values["ridge"].append(spatial_auc(ridge_scores, labels, lymphoid_class))
    mean_auc = {k: float(np.mean(v)) if v else float("nan") for k, v in auc_values.items()}
    lymph = cohort.composition["lymphoid"].to_numpy()
    s = int(np.argmin(np.abs(lymph - 0.3)))
    heatmap = _plot_heatmap(cohort, bags[s], models[fold_of[s]], s, lymphoid_class, out)
    return Bunch(
        spatial_auc=mean_auc["he2rna"],
        spatial_auc_baseline=mean_auc["ridge"],
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
    """The demo's report: HE2RNA beside the tuned linear baseline, then the details."""
    msi = {"he2rna": r.msi_auc_patient, "ridge": r.msi_auc_patient_baseline}
    spatial = {"he2rna": r.spatial_auc, "ridge": r.spatial_auc_baseline}
    table = pd.DataFrame(
        {
            label: [*r.gene_summary[key].values(), msi[key], spatial[key]]
            for key, label in [("he2rna", "HE2RNA"), ("ridge", "tuned linear baseline")]
        },
        index=[
            "composition genes: mean r (per test fold)",
            "noise genes: mean r (per test fold)",
            "genes significant after Holm (pooled)",
            "MSI ROC AUC per patient (embedding vs mean features)",
            f"{MARKER} tile scores vs lymphoid tiles: ROC AUC",
        ],
    )
    echo(
        "\nHE2RNA (defaults) beside the tuned linear baseline (ridge, PCA-r + ridge or "
        "reduced-rank ridge on mean-pooled features, chosen per fold by inner CV), on the "
        f"same {r.n_splits} folds grouped by patient ({r.n_msi} MSI-H of {r.n_slides} slides):"
    )
    shown = table.copy().astype(object)
    for row in shown.index:
        shown.loc[row] = [f"{v:.0f}" if "Holm" in row else f"{v:.3f}" for v in table.loc[row]]
    echo(shown.to_string())
    c = r.gene_comparison
    if c.verdict.startswith("better"):
        echo(f"HE2RNA beats the baseline on the genes it predicts: {c.verdict}.")
    else:
        echo(
            f"HE2RNA does NOT beat the baseline on the genes it predicts: {c.verdict}; on "
            "this cohort a linear model of mean-pooled features does as well."
        )
    echo(f"The baseline chose {r.baseline_choice}.")
    if r.msi_comparison is not None:
        c = r.msi_comparison
        echo(
            f"MSI per patient, embedding {c.auc:.3f} vs mean features {c.auc_baseline:.3f} "
            f"({c.n_positive} MSI-H patients): {c.verdict}."
        )
    else:
        echo("MSI: the cohort has patients of one status only, so no ROC AUC (nan above).")
    echo("\nPer program (HE2RNA, mean r per test fold):")
    summary = r.gene_r.groupby("program", sort=False)["r"].agg(["count", "mean", "min", "max"])
    echo(summary.round(3).to_string())
    echo(f"\nHeatmap of {MARKER} on a held-out slide: {os.fspath(r.heatmap)}")
