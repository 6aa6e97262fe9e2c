"""The slide index: which feature file holds which sample of which patient.

``index.csv`` is what ``he2rna fit``, ``evaluate``, ``predict`` and ``heatmap`` read: one row
per slide, with the columns of :data:`INDEX_COLUMNS` in that order (``sample_id``,
``patient_id`` and ``feature_file`` are required; a manifest's extra columns follow). It is
written in three places, all through :func:`write_index` (atomically, feature files
relative to the index when they lie below it): ``he2rna featurize``
(:func:`index_from_bags`, merged into an earlier run's index by :func:`merge_index`), the
demo, and :func:`build_index` (feature files made by other tools). Manifests, the CSV files
that list slides, are read by :mod:`._manifest`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from .._io import atomic_write
from ..datasets import default_patient_id
from ._manifest import ID_COLUMNS, PATH_COLUMNS, read_table, resolve_path
from ._store import read_bag

__all__ = [
    "INDEX_COLUMNS",
    "INDEX_NAME",
    "build_index",
    "index_from_bags",
    "merge_index",
    "read_index",
    "write_index",
]

#: File name of the index in a features folder.
INDEX_NAME = "index.csv"
#: Columns of the index, in order; ``slide_path`` and ``n_features`` where known.
INDEX_COLUMNS = ("slide_path", "sample_id", "patient_id", "feature_file", "n_tiles", "n_features")
_REQUIRED = ("sample_id", "patient_id", "feature_file")
#: What makes two runs' features comparable: they must agree to share one index.
_COMPARABLE = ("backbone", "weights", "tile_size", "mpp")
#: Feature files by suffix, in order of preference when one stem has several.
_KIND_ORDER = {".h5": 0, ".hdf5": 0, ".pt": 1, ".pth": 1, ".npy": 2}
FEATURE_SUFFIXES = tuple(_KIND_ORDER)


# -- the index ------------------------------------------------------------------------------
def _ordered(table):
    """The index's columns in :data:`INDEX_COLUMNS` order, other columns after them."""
    known = [c for c in INDEX_COLUMNS if c in table.columns]
    return table[known + [c for c in table.columns if c not in INDEX_COLUMNS]]


def read_index(path, *, raw=False):
    """Read an index written by ``he2rna featurize``, ``he2rna index`` or :func:`build_index`.

    Parameters
    ----------
    path : str or Path
        The index file, or the folder that holds it (``index.csv``).
    raw : bool, default=False
        Return the table as written (feature files as written, rows of slides that failed
        kept, no check), to merge a new run into it.

    Returns
    -------
    index : pandas.DataFrame
        One row per slide with a feature file, ``feature_file`` absolute; a listed file
        that is missing is an error.

    Examples
    --------
    >>> from he2rna_sklearn.features import load_bags, read_index
    >>> index = read_index("features/")  # doctest: +SKIP
    >>> bags = load_bags(list(index["feature_file"]), lazy=True)  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        path = path / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"Feature index not found: '{path}'. Run 'he2rna featurize ... --out DIR' first "
            "and pass DIR."
        )
    table = read_table(path, "Feature index")
    if raw:
        return table
    missing = set(_REQUIRED) - set(table.columns)
    if missing:
        raise ValueError(f"Feature index '{path}' lacks columns {sorted(missing)}.")
    table = table[table["feature_file"] != ""].reset_index(drop=True)
    table["feature_file"] = [resolve_path(f, path.parent) for f in table["feature_file"]]
    for f in table["feature_file"]:
        if not Path(f).is_file():
            raise FileNotFoundError(f"Feature file not found: '{f}' (listed in '{path}').")
    return table


def write_index(index, out):
    """Write an index atomically; feature files below its folder are written relative to it.

    Parameters
    ----------
    index : pandas.DataFrame
    out : str or Path
        The index file, or a folder (an existing one, or a path without suffix) that gets
        ``index.csv``.

    Returns
    -------
    path : Path

    Examples
    --------
    >>> from he2rna_sklearn.features import read_index, write_index
    >>> index = read_index("features/")  # doctest: +SKIP
    >>> write_index(index[index["n_tiles"] > 0], "features/")  # doctest: +SKIP
    """
    out = Path(out)
    if out.is_dir() or not out.suffix:
        out = out / INDEX_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    root = out.parent.resolve()
    table = _ordered(index).copy()
    table["feature_file"] = [
        os.path.relpath(f, root)
        if os.path.isabs(f) and Path(f).resolve().is_relative_to(root)
        else f
        for f in table["feature_file"]
    ]
    with atomic_write(out) as tmp:
        table.to_csv(tmp, index=False)
    return out


def index_from_bags(manifest, bags, out):
    """The index of a featurize run: the manifest, and each slide's feature file (relative
    to ``out``; empty for a slide that failed, whose bag is None) and size.

    Parameters
    ----------
    manifest : pandas.DataFrame
        From :func:`~._manifest.read_manifest`: ``slide_path``, ``sample_id``, ``patient_id``.
    bags : list of Bag or None
        From ``SlideFeaturizer(cache_dir=out)``, in the manifest's order.
    out : str or Path
        The features folder (the featurizer's ``cache_dir``).

    Returns
    -------
    index : pandas.DataFrame

    Examples
    --------
    >>> from he2rna_sklearn import SlideFeaturizer
    >>> from he2rna_sklearn.features import index_from_bags, read_manifest, write_index
    >>> manifest = read_manifest("slides.csv")  # doctest: +SKIP
    >>> bags = SlideFeaturizer(cache_dir="features/").fit_transform(
    ...     list(manifest["slide_path"]))  # doctest: +SKIP
    >>> write_index(index_from_bags(manifest, bags, "features/"), "features/")  # doctest: +SKIP
    """
    rows = [
        ("", 0, 0) if b is None else (os.path.relpath(b.meta["feature_file"], out), *b.shape)
        for b in bags
    ]
    files, n_tiles, n_features = (list(c) for c in zip(*rows)) if rows else ([], [], [])
    table = manifest.assign(
        slide_path=[os.path.abspath(p) for p in manifest["slide_path"]],
        feature_file=files,
        n_tiles=n_tiles,
        n_features=n_features,
    )
    return _ordered(table)


def _facts(meta):
    """What makes features comparable across runs, from a bag's metadata."""
    return {k: meta.get(k) for k in _COMPARABLE}


def _same_features(a, b):
    if a["mpp"] is not None and b["mpp"] is not None:
        if abs(float(a["mpp"]) - float(b["mpp"])) > 0.1 * float(b["mpp"]):
            return False
    return all(str(a[k]) == str(b[k]) for k in _COMPARABLE if k != "mpp")


def _check_comparable(old, out, new_meta):
    """Refuse a run whose features cannot share an index with the first readable file of
    the earlier index."""
    for f in old["feature_file"]:
        full = Path(out) / f if f else None
        if full is None or not full.is_file():
            continue
        try:
            before = _facts(read_bag(full, lazy=True, verify=False).meta)
        except (OSError, ValueError):
            continue
        after = _facts(new_meta)
        if not _same_features(before, after):
            raise ValueError(
                f"'{Path(out) / INDEX_NAME}' lists features made with {before}; this "
                f"run made {after}. The two cannot share one index: featurize into "
                "another --out (this run's feature files are kept), or delete the "
                "index to start over."
            )
        return


def merge_index(old, new, out, new_meta=None):
    """Merge a featurize run's index into the one already in ``out``, by slide.

    A row of the earlier index is replaced by the new row of the same slide (same sample
    id or same slide file); the others are kept, in their order; new slides follow. Runs
    whose features are not comparable (another backbone, weights, tile size or
    resolution) are refused rather than mixed.

    Parameters
    ----------
    old : pandas.DataFrame or None
        The index already in ``out``, as written (``read_index(out, raw=True)``).
    new : pandas.DataFrame
        This run's index (:func:`index_from_bags`).
    out : str or Path
        The features folder.
    new_meta : dict, optional
        The ``meta`` of one of this run's bags, compared with the earlier index's first
        readable feature file.

    Returns
    -------
    index : pandas.DataFrame

    Examples
    --------
    >>> from he2rna_sklearn.features import index_from_bags, merge_index, read_index
    >>> new = index_from_bags(manifest, bags, "features/")  # doctest: +SKIP
    >>> old = read_index("features/", raw=True)  # doctest: +SKIP
    >>> index = merge_index(old, new, "features/", bags[0].meta)  # doctest: +SKIP
    """
    if old is None or old.empty:
        return new
    if new_meta is not None:
        _check_comparable(old, out, new_meta)

    def path_key(p):
        return os.path.abspath(p) if p else ""

    by_id = {s: i for i, s in enumerate(new["sample_id"])}
    by_path = {path_key(p): i for i, p in enumerate(new["slide_path"])}
    rows, used = [], set()
    for _, row in old.iterrows():
        hits = {by_id.get(row.get("sample_id"))} | {by_path.get(path_key(row.get("slide_path")))}
        hits.discard(None)
        if len(hits) > 1:
            raise ValueError(
                f"Sample '{row.get('sample_id')}' of '{Path(out) / INDEX_NAME}' matches two "
                "slides of this run (one by sample id, one by file); fix the manifest or use "
                "another --out."
            )
        if hits:
            i = hits.pop()
            if i not in used:
                rows.append(new.iloc[i])
                used.add(i)
        else:
            rows.append(row)
    rows.extend(new.iloc[i] for i in range(len(new)) if i not in used)
    merged = pd.DataFrame(rows).reset_index(drop=True)
    columns = list(new.columns) + [c for c in old.columns if c not in new.columns]
    return merged.reindex(columns=columns).fillna("")


# -- an index of other tools' feature files -------------------------------------------------
def _feature_files(folder):
    """Feature files under ``folder`` by stem; h5 before pt before npy."""
    by_stem = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.suffix.lower() not in FEATURE_SUFFIXES or not path.is_file():
            continue
        if path.name.startswith(".") or any(p.startswith(".") for p in path.parts[-3:-1]):
            continue
        by_stem.setdefault(path.stem, []).append(path)
    out = {}
    for stem, paths in by_stem.items():
        paths.sort(key=lambda p: _KIND_ORDER[p.suffix.lower()])
        first = _KIND_ORDER[paths[0].suffix.lower()]
        best = [p for p in paths if _KIND_ORDER[p.suffix.lower()] == first]
        if len(best) > 1:
            raise ValueError(
                f"Two feature files for '{stem}' in '{folder}': {[os.fspath(p) for p in best]}."
                " Point --features at the folder of one of them, or give a feature_file column "
                "in the manifest."
            )
        out[stem] = paths[0]
    return out


def _manifest_rows(manifest, files, folder, on_missing):
    """Rows of the index for the rows of ``manifest`` matched to ``files`` (by stem)."""
    table = read_table(manifest, "Manifest")
    if not any(c in table.columns for c in (*ID_COLUMNS, *PATH_COLUMNS, "feature_file")):
        raise ValueError(
            f"Manifest '{manifest}' needs a sample_id, slide_id or slide_path column (found "
            f"{list(table.columns)})."
        )
    base = Path(manifest).parent
    id_col = next((c for c in ID_COLUMNS if c in table.columns), None)
    path_col = next((c for c in PATH_COLUMNS if c in table.columns), None)
    rows, missing = [], []
    for i, rec in table.iterrows():
        keys = []
        if rec.get("feature_file"):
            found = Path(resolve_path(rec["feature_file"], base))
            if not found.is_file():
                raise FileNotFoundError(
                    f"Feature file not found: '{found}' (manifest '{manifest}', row {i + 1})."
                )
        else:
            if path_col and rec[path_col]:
                keys.append(Path(rec[path_col]).stem)
            if id_col and rec[id_col]:
                keys.append(rec[id_col])
            found = next((files[k] for k in keys if k in files), None)
        sample = rec[id_col] if id_col and rec[id_col] else (keys[0] if keys else None)
        if sample is None and found is not None:
            sample = found.stem
        if found is None:
            missing.append((i + 1, keys))
            continue
        row = {"sample_id": sample, "feature_file": found}
        if rec.get("patient_id"):
            row["patient_id"] = rec["patient_id"]
        if path_col and rec[path_col]:
            row["slide_path"] = resolve_path(rec[path_col], base)
        rows.append(row)
    if missing:
        shown = ", ".join(f"row {r} {k}" for r, k in missing[:5])
        message = (
            f"{len(missing)} of {len(table)} manifest rows have no feature file under "
            f"'{folder}' ({shown}); feature files are matched by stem, e.g. "
            f"{sorted(files)[:3]}."
        )
        if on_missing == "raise":
            raise ValueError(message + " Pass on_missing='skip' to leave them out.")
        warnings.warn(message + " They are left out.", UserWarning, stacklevel=3)
    if not rows:
        raise ValueError(f"No manifest row of '{manifest}' matched a feature file.")
    return rows


def build_index(features, manifest=None, *, out=None, on_missing="raise", patient_id="tcga"):
    """Build the feature index of the ``he2rna`` command from outside feature files.

    ``he2rna fit``, ``evaluate``, ``predict`` and ``heatmap`` read an ``index.csv``:
    ``sample_id``, ``patient_id`` and ``feature_file`` per slide. ``he2rna featurize``
    writes it; for features made by TRIDENT, CLAM, STAMP or HE2RNA's code, this builds it.
    Feature files (``.h5``, ``.pt``, ``.npy``) are found anywhere under ``features`` and
    matched to the manifest by file stem (the slide file's stem, as these tools name them).

    Parameters
    ----------
    features : str or Path
        Folder of feature files (searched recursively).
    manifest : str or Path, optional
        CSV (or TSV) with at least one of ``slide_path``, ``slide_id``, ``sample_id``, and
        optionally ``patient_id`` and ``feature_file`` (a path, absolute or relative to the
        manifest). Each row is matched to a feature file by, in order: ``feature_file``, the
        stem of ``slide_path``, ``slide_id``, ``sample_id``. Without a manifest, every
        feature file is one sample named by its stem.
    out : str or Path, optional
        Where to write the index CSV (a folder gets ``index.csv``); feature paths are
        written relative to it when they lie below it.
    on_missing : {"raise", "skip"}, default="raise"
        A manifest row without a feature file raises an error naming it, or is left out
        with a warning.
    patient_id : {"tcga", None}, default="tcga"
        Patient of a sample without ``patient_id``: the TCGA patient of its barcode (first
        12 characters), else the sample itself.

    Returns
    -------
    index : pandas.DataFrame
        ``slide_path`` where the manifest has it, ``sample_id``, ``patient_id``,
        ``feature_file`` (absolute), ``n_tiles`` and ``n_features``.

    Examples
    --------
    >>> from he2rna_sklearn.features import build_index
    >>> index = build_index("trident_job/20x_256px_0px_overlap/features_uni_v1",
    ...                     "slides.csv", out="features_uni/")  # doctest: +SKIP
    """
    if on_missing not in ("raise", "skip"):
        raise ValueError(f"on_missing must be 'raise' or 'skip', got {on_missing!r}.")
    if patient_id not in ("tcga", None):
        raise ValueError(f"patient_id must be 'tcga' or None, got {patient_id!r}.")
    folder = Path(features)
    if not folder.is_dir():
        raise FileNotFoundError(f"Features folder not found: '{folder}'.")
    files = _feature_files(folder)
    if manifest is not None:
        rows = _manifest_rows(manifest, files, folder, on_missing)
    elif files:
        rows = [{"sample_id": stem, "feature_file": p} for stem, p in sorted(files.items())]
    else:
        raise ValueError(f"No feature files ({', '.join(FEATURE_SUFFIXES)}) under '{folder}'.")
    index = pd.DataFrame(rows)
    dup = index["sample_id"][index["sample_id"].duplicated()]
    if len(dup):
        raise ValueError(f"Sample id '{dup.iloc[0]}' names more than one feature file.")
    dup = index["feature_file"][index["feature_file"].duplicated()]
    if len(dup):
        raise ValueError(f"Feature file '{dup.iloc[0]}' is listed for more than one sample.")
    if "patient_id" not in index:
        index["patient_id"] = ""
    index["patient_id"] = [
        p if p else (default_patient_id(s) if patient_id == "tcga" else s)
        for s, p in zip(index["sample_id"], index["patient_id"].fillna(""))
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # µm coordinates do not matter for the index
        shapes = [read_bag(f, lazy=True).shape for f in index["feature_file"]]
    index["n_tiles"] = [s[0] for s in shapes]
    index["n_features"] = [s[1] for s in shapes]
    dims = sorted({s[1] for s in shapes if s[0]})
    if len(dims) > 1:
        raise ValueError(
            f"The feature files under '{folder}' have different dimensions {dims}: they come "
            "from different encoders. Index one encoder's folder at a time."
        )
    index["feature_file"] = [os.fspath(Path(f).resolve()) for f in index["feature_file"]]
    index = _ordered(index)
    if out is not None:
        write_index(index, out)
    return index
