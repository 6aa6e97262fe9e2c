"""A realistic semi-synthetic cohort: real expression profiles drive each slide's tissue."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state
from tqdm.auto import tqdm

from ._synthetic import (
    _CELL,
    _KATHER_MPP,
    _class_map,
    _load_textures,
    _render,
    write_pyramidal_tiff,
)

__all__ = ["COHORT_CLASS_NAMES", "SIGNATURES", "make_expression_cohort", "signature_scores"]

#: Tissue classes of :func:`make_expression_cohort`; index 0 is background (glass).
COHORT_CLASS_NAMES = ("background", "tumour", "stroma", "lymphocytes", "mucus", "mucosa")

#: Kather 2016 texture folders behind each class. Kather's DEBRIS class holds debris and
#: mucus, MUCOSA is normal colon mucosa.
_COHORT_SOURCES = {
    "background": ("08_EMPTY",),
    "tumour": ("01_TUMOR",),
    "stroma": ("02_STROMA", "03_COMPLEX"),
    "lymphocytes": ("04_LYMPHO",),
    "mucus": ("05_DEBRIS",),
    "mucosa": ("06_MUCOSA",),
}

#: Marker genes whose mean z-score (a signature score) drives each tissue class.
SIGNATURES = {
    "tumour": ("EPCAM", "KRT20", "CDX2", "CEACAM5", "VIL1", "KRT8", "KRT18", "CDH17", "LGALS4"),
    "stroma": ("COL1A1", "COL1A2", "COL3A1", "DCN", "LUM", "FAP", "PDGFRB", "SPARC", "THY1"),
    "lymphocytes": (
        "PTPRC",
        "CD3E",
        "CD3D",
        "CD2",
        "CD8A",
        "CD19",
        "MS4A1",
        "CD79A",
        "CD247",
        "LCK",
        "CCL5",
        "GZMA",
        "CXCL13",
        "CD52",
        "CORO1A",
    ),  # fmt: skip
    "mucus": ("MUC2", "TFF3", "REG4", "SPINK4", "FCGBP", "CLCA1", "ZG16", "AGR2", "ITLN1"),
    "mucosa": ("CA1", "CA2", "GUCA2A", "GUCA2B", "AQP8", "CLCA4", "SLC26A3", "CA4", "MS4A12"),
}

# Mean tissue composition (tumour, stroma, lymphocytes, mucus, mucosa) and the spatial scale
# (in 150-px cells) of each class's regions: lymphoid aggregates are small.
_PRIOR = np.array([0.40, 0.25, 0.12, 0.10, 0.13])
_SIGMAS = np.array([3.0, 2.2, 1.1, 1.8, 1.6])


def signature_scores(expression, signatures=None):
    """Per-sample signature scores: the mean z-score of each signature's genes.

    Parameters
    ----------
    expression : DataFrame of shape (n_samples, n_genes)
        Log-scale expression, genes as columns (gene symbols).
    signatures : dict of str to sequence of str, optional
        Default :data:`SIGNATURES`. Genes absent from ``expression`` are ignored; a
        signature with none present is an error.

    Returns
    -------
    scores : DataFrame of shape (n_samples, n_signatures)

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> expr = pd.DataFrame(np.arange(12.0).reshape(4, 3) ** 2, columns=["A", "B", "C"])
    >>> signature_scores(expr, {"ab": ["A", "B"], "c": ["C", "Z"]}).shape
    (4, 2)
    """
    signatures = SIGNATURES if signatures is None else signatures
    columns = {}
    for name, genes in signatures.items():
        present = [g for g in genes if g in expression.columns]
        if not present:
            raise ValueError(
                f"No gene of signature {name!r} ({list(genes)[:5]}...) is in the expression "
                "table; pass gene symbols as columns or give your own signatures=."
            )
        block = expression[present].to_numpy(dtype=np.float64)
        std = block.std(axis=0)
        z = (block - block.mean(axis=0)) / np.where(std > 0, std, 1.0)
        columns[name] = z.mean(axis=1)
    return pd.DataFrame(columns, index=expression.index)


def make_expression_cohort(
    expression,
    out_dir="expression-cohort",
    *,
    msi=None,
    patient_ids=None,
    strength=1.5,
    noise=0.3,
    grid=(20, 26),
    random_state=0,
    progress=True,
):
    """Write one synthetic slide per expression profile, its tissue driven by that profile.

    A realistic benchmark cohort: the targets are real expression profiles (e.g. TCGA),
    and each sample's slide is composed of real colorectal H&E textures (Kather 2016) in
    proportions set by the sample's own expression. Per sample, the signature scores of
    tumour epithelium, stroma, lymphocytes, mucus and normal mucosa (:data:`SIGNATURES`)
    become class fractions::

        fraction_c = softmax_c(log prior_c + strength * score_c + noise * N(0, 1))

    and the slide's tissue is laid out in spatially coherent regions with those weights
    (see :func:`make_synthetic_cohort` for the rendering). Genes that follow a tissue
    compartment are then predictable from the slide, as in real data; the rest are not.
    The true class map of every slide is kept, so tile-level predictions can be checked.

    Parameters
    ----------
    expression : DataFrame of shape (n_samples, n_genes)
        Log-scale expression (e.g. log10(1 + counts)), samples as rows, gene symbols as
        columns. Its rows become the slides' targets, unchanged.
    out_dir : str or Path, default="expression-cohort"
        Folder of the slides (created if needed).
    msi : Series or array-like of shape (n_samples,), optional
        MSI status per sample, kept with the cohort (aligned by index when a Series).
    patient_ids : array-like of shape (n_samples,), optional
        Patient of each sample (default: each sample is its own patient).
    strength : float, default=1.5
        How strongly signature scores move the composition.
    noise : float, default=0.3
        Standard deviation of the per-class composition noise (log scale).
    grid : tuple of int, default=(20, 26)
        Rows and columns of 150-px cells per slide (about 100 tissue tiles of 224 px at
        0.5 µm/px).
    random_state : int, RandomState instance or None, default=0
        The cohort (composition noise, layout, textures) is deterministic for a seed.
    progress : bool, default=True

    Returns
    -------
    cohort : sklearn.utils.Bunch
        ``slide_paths``, ``slide_ids`` (the expression index), ``patient_ids``,
        ``expression`` (the input table), ``msi`` (Series or None), ``signature_scores``,
        ``target_composition`` (the drawn class weights), ``composition`` (the realised
        tissue fractions of each slide's map), ``class_maps``, ``class_names``
        (:data:`COHORT_CLASS_NAMES`), ``cell_size``, ``mpp`` and ``DESCR``.

    Examples
    --------
    >>> from he2rna_sklearn.datasets import load_expression, make_expression_cohort
    >>> data = load_expression("tcga-coadread-rsem-counts.csv.gz",
    ...                        log_transform=True)  # doctest: +SKIP
    >>> cohort = make_expression_cohort(data.expression, "cohort/")  # doctest: +SKIP
    """
    if not hasattr(expression, "columns"):
        raise TypeError("expression must be a DataFrame with gene symbols as columns.")
    if len(expression) < 2:
        raise ValueError(f"expression needs at least 2 samples, got {len(expression)}.")
    values = expression.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("expression has NaN or infinite values; impute or drop them first.")
    slide_ids = [str(s) for s in expression.index]
    if len(set(slide_ids)) != len(slide_ids):
        raise ValueError("expression has duplicated sample ids (its index).")
    names = [_safe_name(s) for s in slide_ids]
    if len(set(names)) != len(names):
        raise ValueError("Sample ids collide once made file names; make them unique.")
    if patient_ids is None:
        patient_ids = slide_ids
    patient_ids = np.asarray(patient_ids, dtype=object)
    if len(patient_ids) != len(slide_ids):
        raise ValueError(f"Got {len(patient_ids)} patient ids for {len(slide_ids)} samples.")
    if msi is not None:
        msi = msi.reindex(expression.index) if hasattr(msi, "reindex") else pd.Series(msi)
        if len(msi) != len(slide_ids):
            raise ValueError(f"Got {len(msi)} MSI labels for {len(slide_ids)} samples.")
        msi = pd.Series(np.asarray(msi, dtype=object), index=expression.index, name="msi")
        if msi.isna().any():
            missing = msi.index[msi.isna()].tolist()[:5]
            raise ValueError(f"msi has no label for samples {missing}; drop them first.")

    rng = check_random_state(random_state)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    textures = _load_textures(_COHORT_SOURCES)
    tissue = list(COHORT_CLASS_NAMES[1:])
    scores = signature_scores(expression)[tissue]
    logits = np.log(_PRIOR) + strength * scores.to_numpy() + rng.normal(0, noise, scores.shape)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)

    paths, class_maps, fractions = [], [], []
    for i, name in enumerate(tqdm(names, desc="Writing slides", disable=not progress)):
        cmap = _class_map(rng, grid, weights[i], sigmas=_SIGMAS)
        img = _render(cmap, textures, rng, class_names=COHORT_CLASS_NAMES)
        path = write_pyramidal_tiff(out_dir / f"{name}.tiff", img, _KATHER_MPP)
        counts = np.bincount(cmap.ravel(), minlength=len(COHORT_CLASS_NAMES))[1:]
        fractions.append(counts / max(counts.sum(), 1))
        paths.append(os.fspath(path))
        class_maps.append(cmap)

    index = pd.Index(slide_ids, name="slide_id")
    descr = (
        f"Expression-driven cohort: {len(slide_ids)} slides of {grid[0] * _CELL} x "
        f"{grid[1] * _CELL} px at {_KATHER_MPP} µm/px from Kather et al. 2016 CRC textures "
        f"(CC-BY-4.0); composition from the signature scores of {', '.join(tissue)} "
        f"(strength {strength}, noise {noise}); {expression.shape[1]} genes."
    )
    return Bunch(
        slide_paths=paths,
        slide_ids=np.array(slide_ids, dtype=object),
        patient_ids=patient_ids,
        expression=expression,
        msi=msi,
        signature_scores=scores.set_axis(index),
        target_composition=pd.DataFrame(weights, index=index, columns=tissue),
        composition=pd.DataFrame(np.array(fractions), index=index, columns=tissue),
        class_maps=class_maps,
        class_names=COHORT_CLASS_NAMES,
        cell_size=_CELL,
        mpp=_KATHER_MPP,
        DESCR=descr,
    )


def _safe_name(sample_id):
    """A file name for a sample id (path separators and odd characters replaced)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in sample_id)
