"""A synthetic cohort of real-tissue slides with known composition, expression and MSI."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from sklearn.utils import Bunch, check_random_state
from tqdm.auto import tqdm

from .._io import atomic_write

__all__ = [
    "CLASS_NAMES",
    "GENE_PROGRAMS",
    "make_synthetic_cohort",
    "tile_classes",
    "write_pyramidal_tiff",
]

#: Tissue classes of the synthetic slides; index 0 is background (glass).
CLASS_NAMES = ("background", "tumour", "stroma", "lymphoid", "mucin", "debris", "adipose")

#: Kather 2016 texture folders behind each class.
_SOURCES = {
    "background": ("08_EMPTY",),
    "tumour": ("01_TUMOR",),
    "stroma": ("02_STROMA", "03_COMPLEX"),
    "lymphoid": ("04_LYMPHO",),
    "mucin": ("06_MUCOSA",),
    "debris": ("05_DEBRIS",),
    "adipose": ("07_ADIPOSE",),
}

#: Marker genes whose expression follows the fraction of one tissue class.
GENE_PROGRAMS = {
    "lymphoid": ("PTPRC", "CD3E", "CD3D", "CD2", "CD8A", "MS4A1", "CD79A", "CD19"),
    "tumour": ("EPCAM", "KRT20", "CDX2", "CEACAM5", "VIL1", "KRT8"),
    "stroma": ("COL1A1", "COL1A2", "COL3A1", "DCN", "LUM", "ACTA2"),
    "mucin": ("MUC2", "TFF3", "REG4", "SPINK4"),
    "adipose": ("ADIPOQ", "PLIN1", "LEP"),
}

# Prior weights of the tissue classes (tumour, stroma, lymphoid, mucin, debris, adipose)
# and how MSI-high tumours shift them: richer in lymphocytes and mucin.
_BASE_WEIGHTS = np.array([0.34, 0.26, 0.10, 0.10, 0.08, 0.12])
_MSI_SHIFT = np.array([1.0, 1.0, 3.5, 2.5, 1.0, 1.0])
# Spatial scale (in cells) of each class's regions: lymphoid aggregates are small.
_SIGMAS = np.array([3.0, 2.2, 1.1, 1.8, 1.4, 2.4])

_CELL = 150  # Kather 2016 tiles: 150 x 150 px
_KATHER_MPP = 0.495


def _load_textures(sources=None):
    """The shipped Kather 2016 tiles (RGB arrays) of each class, by class name."""
    root = resources.files("he2rna_sklearn.datasets") / "data" / "kather2016"
    textures = {}
    for name, folders in (sources or _SOURCES).items():
        tiles = []
        for folder in folders:
            for entry in sorted((root / folder).iterdir(), key=lambda e: e.name):
                if entry.name.endswith(".tif"):
                    with entry.open("rb") as fh, Image.open(fh) as im:
                        tiles.append(np.asarray(im.convert("RGB")))
        textures[name] = tiles
    return textures


def _augment(tile, rng, colour, jitter=True):
    """A dihedral transform and a mild per-tile colour jitter on top of the slide's."""
    out = np.rot90(tile, rng.randint(4))
    if rng.rand() < 0.5:
        out = out[:, ::-1]
    gain, shift = colour, 0.0
    if jitter:
        gain = colour * (1 + rng.normal(0, 0.015, size=3))
        shift = rng.normal(0, 3.0)
    return np.clip(out.astype(np.float32) * gain + shift, 0, 255).astype(np.uint8)


def _smooth_field(rng, shape, sigma):
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="reflect")
    return (field - field.mean()) / (field.std() + 1e-9)


def _class_map(rng, shape, weights, coherence=2.2, sigmas=_SIGMAS):
    """A spatially coherent map of class indices (0 = background) on a cell grid.

    ``weights`` and ``sigmas`` (the spatial scale of each class's regions, in cells) hold
    one entry per tissue class; class ``i`` of ``weights`` is index ``i + 1`` in the map.
    """
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    cy, cx = rows / 2 + rng.normal(0, rows * 0.04), cols / 2 + rng.normal(0, cols * 0.04)
    ry, rx = rows * rng.uniform(0.36, 0.46), cols * rng.uniform(0.36, 0.46)
    dist = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    tissue = dist + 0.25 * _smooth_field(rng, shape, 2.5) < 1.0
    labels, n = ndimage.label(tissue)
    if n > 1:
        sizes = ndimage.sum_labels(tissue, labels, index=np.arange(1, n + 1))
        tissue = labels == (1 + int(np.argmax(sizes)))
    scores = np.stack([coherence * _smooth_field(rng, shape, s) for s in sigmas])
    scores += np.log(np.maximum(weights, 1e-6))[:, None, None]
    cmap = 1 + np.argmax(scores, axis=0)
    return np.where(tissue, cmap, 0).astype(np.int8)


def _render(class_map, textures, rng, class_names=CLASS_NAMES):
    colour = 1 + rng.normal(0, 0.015, size=3)  # per-slide stain variation
    rows, cols = class_map.shape
    img = np.empty((rows * _CELL, cols * _CELL, 3), dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            choices = textures[class_names[class_map[r, c]]]
            tile = choices[rng.randint(len(choices))]
            cell = _augment(tile, rng, colour, jitter=class_map[r, c] != 0)
            img[r * _CELL : (r + 1) * _CELL, c * _CELL : (c + 1) * _CELL] = cell
    return img


def tiff_level_options(mpp, downsample, first, tile=256, quality=90):
    """tifffile ``write`` options of one pyramid level that OpenSlide reads as generic TIFF:
    tiled, JPEG, and the resolution (pixels per centimetre) from which it reports mpp."""
    ppcm = 1e4 / (mpp * downsample)
    return dict(
        tile=(tile, tile),
        compression="jpeg",
        compressionargs={"level": quality},
        photometric="rgb",
        resolution=(ppcm, ppcm),
        resolutionunit="CENTIMETER",
        subfiletype=0 if first else 1,
        metadata=None,
    )


def write_pyramidal_tiff(path, rgb, mpp, *, downsamples=(1, 4, 16), tile=256, quality=90):
    """Write an RGB image as a tiled, JPEG-compressed pyramidal TIFF that OpenSlide reads.

    The resolution is stored in the TIFF resolution tags (pixels per centimetre), which
    OpenSlide reports as ``openslide.mpp-x``/``-y``. The file is written atomically.
    """
    import tifffile

    path = Path(path)
    base = Image.fromarray(rgb)
    with atomic_write(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=False) as tw:
        for i, ds in enumerate(downsamples):
            level = base if ds == 1 else base.reduce(int(ds))
            tw.write(np.asarray(level), **tiff_level_options(mpp, ds, i == 0, tile, quality))
    return path


def tile_classes(coords, extent, class_map, cell_size=_CELL):
    """The true class of each tile: the majority class of the cells it covers.

    Parameters
    ----------
    coords : array-like of shape (n_tiles, 2)
        Level-0 (x, y) of each tile's top-left corner (``bag.coords``).
    extent : float
        Tile side in level-0 pixels (``bag.meta["extent"]``).
    class_map : ndarray of shape (rows, cols)
        A slide's class map from :func:`make_synthetic_cohort`.
    cell_size : int
        Level-0 pixels per class-map cell.

    Returns
    -------
    labels : ndarray of shape (n_tiles,), int
        Indices into ``CLASS_NAMES``.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    class_map = np.asarray(class_map)
    rows, cols = class_map.shape
    n_classes = int(class_map.max()) + 1
    labels = np.zeros(len(coords), dtype=np.int64)
    for i, (x, y) in enumerate(coords):
        votes = np.zeros(n_classes)
        r0, r1 = int(y // cell_size), min(rows - 1, int((y + extent - 1e-9) // cell_size))
        c0, c1 = int(x // cell_size), min(cols - 1, int((x + extent - 1e-9) // cell_size))
        for r in range(r0, r1 + 1):
            oy = min(y + extent, (r + 1) * cell_size) - max(y, r * cell_size)
            for c in range(c0, c1 + 1):
                ox = min(x + extent, (c + 1) * cell_size) - max(x, c * cell_size)
                votes[class_map[r, c]] += ox * oy
        labels[i] = int(np.argmax(votes))
    return labels


def make_synthetic_cohort(
    n_patients=40,
    out_dir="synthetic-cohort",
    *,
    grid=(20, 26),
    two_slide_fraction=0.25,
    msi_fraction=0.3,
    n_noise_genes=10,
    noise=0.12,
    random_state=0,
    progress=True,
):
    """Write a cohort of synthetic slides made of real H&E textures, with known biology.

    Each slide is a pyramidal, JPEG-compressed, tiled TIFF (three levels) at 0.495 µm/px
    that OpenSlide opens. Its tissue is built from the Kather 2016 colorectal tiles shipped
    with this package, augmented (flips, rotations, mild colour jitter) and laid out on a
    grid of 150-px cells in spatially coherent regions of tumour, stroma, lymphoid
    aggregates, mucin, debris and adipose tissue on glass.

    Each patient's tissue composition is drawn from a Dirichlet prior; MSI-high patients
    are richer in lymphocytes and mucin. Marker genes (``GENE_PROGRAMS``) follow the
    fraction of their tissue class over the patient's slides, plus noise; noise genes
    follow nothing. Some patients have two slides, which share the patient's expression.

    Parameters
    ----------
    n_patients : int, default=40
    out_dir : str or Path, default="synthetic-cohort"
        Folder the slides are written to (created if needed).
    grid : tuple of int, default=(20, 26)
        Rows and columns of 150-px cells per slide (3000 x 3900 px by default).
    two_slide_fraction : float, default=0.25
        Fraction of patients with two slides.
    msi_fraction : float, default=0.3
        Expected fraction of MSI-high patients.
    n_noise_genes : int, default=10
        Genes unrelated to the tissue.
    noise : float, default=0.12
        Standard deviation of the expression noise of marker genes (log10 units).
    random_state : int, RandomState instance or None, default=0
        The cohort is deterministic for a given seed.
    progress : bool, default=True

    Returns
    -------
    cohort : sklearn.utils.Bunch
        ``slide_paths`` (list of str), ``slide_ids``, ``patient_ids`` (one per slide),
        ``expression`` (DataFrame, slides x genes, log10(1 + x) scale), ``msi``
        (Series of "MSI-H"/"MSS" per slide), ``composition`` (DataFrame of tissue-class
        fractions per slide), ``class_maps`` (list of cell-grid arrays of class indices),
        ``class_names``, ``cell_size`` (level-0 px per cell), ``mpp``, ``genes``
        (DataFrame: each gene's program, or "noise") and ``DESCR``.

    Examples
    --------
    >>> from he2rna_sklearn.datasets import make_synthetic_cohort
    >>> cohort = make_synthetic_cohort(n_patients=4, out_dir="cohort", grid=(6, 8),
    ...                                progress=False)  # doctest: +SKIP
    >>> cohort.expression.shape  # doctest: +SKIP
    (5, 37)
    """
    rng = check_random_state(random_state)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    textures = _load_textures()
    tissue_classes = CLASS_NAMES[1:]

    patients = [f"SYN-{i + 1:04d}" for i in range(n_patients)]
    is_msi = rng.rand(n_patients) < msi_fraction
    n_slides = np.where(rng.rand(n_patients) < two_slide_fraction, 2, 1)

    slide_ids, slide_patients, slide_paths, class_maps, fractions = [], [], [], [], []
    bar = tqdm(
        total=int(n_slides.sum()),
        desc="Writing synthetic slides",
        unit="slide",
        disable=not progress,
    )
    for p, patient in enumerate(patients):
        weights = _BASE_WEIGHTS * (_MSI_SHIFT if is_msi[p] else 1.0)
        weights = rng.dirichlet(10.0 * weights / weights.sum())
        for s in range(n_slides[p]):
            cmap = _class_map(rng, grid, weights)
            img = _render(cmap, textures, rng)
            sid = f"{patient}-{s + 1:02d}"
            path = write_pyramidal_tiff(out_dir / f"{sid}.tiff", img, _KATHER_MPP)
            counts = np.bincount(cmap.ravel(), minlength=len(CLASS_NAMES))[1:]
            fractions.append(counts / max(counts.sum(), 1))
            slide_ids.append(sid)
            slide_patients.append(patient)
            slide_paths.append(os.fspath(path))
            class_maps.append(cmap)
            bar.update()
    bar.close()

    composition = pd.DataFrame(
        np.array(fractions),
        index=pd.Index(slide_ids, name="slide_id"),
        columns=list(tissue_classes),
    )
    # A patient's expression reflects all of its tumour: the mean over its slides.
    patient_comp = composition.groupby(np.array(slide_patients)).mean().loc[patients]

    genes, programs, columns = [], [], []
    for program, markers in GENE_PROGRAMS.items():
        frac = patient_comp[program].to_numpy()
        for gene in markers:
            base, slope = rng.uniform(1.0, 3.0), rng.uniform(2.0, 4.0)
            columns.append(base + slope * frac + rng.normal(0, noise, n_patients))
            genes.append(gene)
            programs.append(program)
    for j in range(n_noise_genes):
        columns.append(rng.uniform(1.0, 3.0) + rng.normal(0, 0.3, n_patients))
        genes.append(f"NOISE{j + 1:02d}")
        programs.append("noise")
    patient_expr = pd.DataFrame(
        np.clip(np.column_stack(columns), 0, None), index=patients, columns=genes
    )
    expression = patient_expr.loc[slide_patients].set_index(pd.Index(slide_ids, name="slide_id"))
    msi_by_patient = dict(zip(patients, np.where(is_msi, "MSI-H", "MSS")))
    msi = pd.Series([msi_by_patient[p] for p in slide_patients], index=expression.index, name="msi")

    descr = (
        f"Synthetic cohort: {n_patients} patients, {len(slide_ids)} slides "
        f"({int((n_slides == 2).sum())} patients with two), {int(is_msi.sum())} MSI-H. "
        f"Slides are {grid[0] * _CELL} x {grid[1] * _CELL} px at {_KATHER_MPP} µm/px, built "
        "from Kather et al. 2016 CRC tiles (CC-BY-4.0). Marker genes: "
        + ", ".join(f"{k} ({len(v)})" for k, v in GENE_PROGRAMS.items())
        + f"; {n_noise_genes} noise genes."
    )
    return Bunch(
        slide_paths=slide_paths,
        slide_ids=np.array(slide_ids, dtype=object),
        patient_ids=np.array(slide_patients, dtype=object),
        expression=expression,
        msi=msi,
        composition=composition,
        class_maps=class_maps,
        class_names=CLASS_NAMES,
        cell_size=_CELL,
        mpp=_KATHER_MPP,
        genes=pd.DataFrame({"program": programs}, index=pd.Index(genes, name="gene")),
        DESCR=descr,
    )
