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
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_write
from ..datasets import default_patient_id
from ..slides import lookup_slide_mpp
from ._interop import (
    export_facts,
    safe_name,
    trident_folder,
    write_clam_files,
    write_stamp_h5,
    write_trident_h5,
)
from ._manifest import ID_COLUMNS, PATH_COLUMNS, check_ids, read_table, resolve_path
from ._store import read_bag

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "INDEX_COLUMNS",
    "INDEX_NAME",
    "build_index",
    "check_index_compatible",
    "export_features",
    "index_from_bags",
    "merge_index",
    "read_index",
    "update_index",
    "write_index",
]

#: File name of the index in a features folder.
INDEX_NAME = "index.csv"
#: Columns of the index, in order; ``slide_path``, ``n_features`` and
#: ``slide_fingerprint`` (the SHA-256 of the slide file, for this package's feature files)
#: where known.
INDEX_COLUMNS = (
    "slide_path",
    "sample_id",
    "patient_id",
    "feature_file",
    "n_tiles",
    "n_features",
    "slide_fingerprint",
)
#: The lock file that serialises updates of a folder's index (concurrent featurize runs).
LOCK_NAME = ".index.csv.lock"
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
    table = table[table["feature_file"] != ""]
    for column, what in (("sample_id", "Sample"), ("feature_file", "Feature file")):
        dup = table[column][table[column].duplicated(keep=False)]
        if len(dup):
            rows = [i + 2 for i in dup.index[:5]]  # line numbers, after the header
            raise ValueError(
                f"{what} '{dup.iloc[0]}' is listed more than once in '{path}' (lines {rows}): "
                "each slide must appear once; remove the repeated rows."
            )
    table = table.reset_index(drop=True)
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
        slide_fingerprint=[
            "" if b is None else str(b.meta.get("slide_fingerprint") or "") for b in bags
        ],
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
    if "feature_file" not in old:
        return
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


def check_index_compatible(out, meta):
    """Refuse, before any work, features that cannot join the index already in ``out``.

    Parameters
    ----------
    out : str or Path
        A features folder; without an ``index.csv`` in it, anything is compatible.
    meta : dict
        ``backbone``, ``weights``, ``tile_size`` and ``mpp`` of the features to add (as
        a bag's ``meta`` has them).

    Raises
    ------
    ValueError
        Naming the index and both sets of facts, when they differ (another backbone,
        weights, tile size, or a resolution more than 10% apart).

    Examples
    --------
    >>> from he2rna_sklearn.features import check_index_compatible
    >>> check_index_compatible("features/", {"backbone": "resnet50", "weights": "imagenet",
    ...                        "tile_size": 224, "mpp": 0.5})  # doctest: +SKIP
    """
    path = Path(out) / INDEX_NAME
    if path.is_file():
        _check_comparable(read_index(path, raw=True), out, meta)


@contextmanager
def _index_lock(folder):
    """Hold the lock of ``folder``'s index (a lock file beside it), so that concurrent runs
    update the index one after the other. Without ``fcntl`` (Windows), ``msvcrt``'s lock
    of the file's first byte is used."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a+b") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        else:  # pragma: no cover - Windows
            import msvcrt

            fh.seek(0)
            while True:
                try:
                    msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after 10 s; keep waiting
                    continue
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            else:  # pragma: no cover - Windows
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)


def update_index(out, new, new_meta=None):
    """Merge a run's index into the one in ``out`` and write it, safely under concurrency.

    The index on disk is read, merged (:func:`merge_index`) and written (atomically) while
    holding a lock on the folder's index, so that runs finishing at the same time into one
    folder each add their slides instead of the last one's overwriting the others'.

    Parameters
    ----------
    out : str or Path
        The features folder.
    new : pandas.DataFrame
        This run's index (:func:`index_from_bags`).
    new_meta : dict, optional
        The ``meta`` of one of this run's bags (see :func:`merge_index`).

    Returns
    -------
    index : pandas.DataFrame
        The index written.
    n_before : int
        Rows of the index before this run (0 without one).

    Examples
    --------
    >>> from he2rna_sklearn.features import index_from_bags, update_index
    >>> index, n_before = update_index(
    ...     "features/", index_from_bags(manifest, bags, "features/"))  # doctest: +SKIP
    """
    out = Path(out)
    with _index_lock(out):
        old = read_index(out / INDEX_NAME, raw=True) if (out / INDEX_NAME).is_file() else None
        index = merge_index(old, new, out, new_meta)
        write_index(index, out / INDEX_NAME)
    return index, 0 if old is None else len(old)


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
    check_ids(table, (*ID_COLUMNS, "patient_id"), f"manifest '{manifest}'", allow_empty=ID_COLUMNS)
    named_by = [c for c in (id_col, path_col, "feature_file") if c in table.columns]
    unnamed = [i + 1 for i, rec in table.iterrows() if not any(rec[c] for c in named_by)]
    if unnamed:
        raise ValueError(
            f"Manifest '{manifest}' rows {unnamed[:5]} have no {' / '.join(named_by)}: "
            "give each row the slide or sample it is about."
        )
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


def build_index(
    features, manifest=None, *, out=None, on_missing="raise", patient_id="tcga", slide_mpp=None
):
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
    slide_mpp : float or dict, optional
        The slides' level-0 µm per pixel (one number, or a mapping by feature file path,
        name or stem), recorded in a ``slide_mpp`` column: the ``he2rna`` commands then
        convert coordinates stored in µm (STAMP) to level-0 pixels without the slide files.

    Returns
    -------
    index : pandas.DataFrame
        ``slide_path`` where the manifest has it, ``sample_id``, ``patient_id``,
        ``feature_file`` (absolute), ``n_tiles``, ``n_features``, and ``slide_mpp`` when
        given.

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
    if slide_mpp is not None:
        values = [lookup_slide_mpp(slide_mpp, f) for f in index["feature_file"]]
        bad = [v for v in values if v is not None and not v > 0]
        if bad:
            raise ValueError(f"slide_mpp must be positive µm per pixel, got {bad[0]}.")
        index["slide_mpp"] = ["" if v is None else v for v in values]
    index["feature_file"] = [os.fspath(Path(f).resolve()) for f in index["feature_file"]]
    index = _ordered(index)
    if out is not None:
        write_index(index, out)
    return index


# -- export to other tools' layouts ------------------------------------------------------------
#: The layouts of :func:`export_features`.
EXPORT_LAYOUTS = ("trident", "clam", "stamp")
#: The file that marks a folder written by :func:`export_features` (it may be written again).
EXPORT_MARK = ".he2rna-export"


def _slide_mpp_by_file(index, slide_mpp=None):
    """Level-0 µm per pixel by feature file: ``slide_mpp`` (one number for all, or a
    mapping), else the index's ``slide_mpp`` column; None when neither says."""
    by_file = {}
    column = index["slide_mpp"] if "slide_mpp" in index else [""] * len(index)
    for f, value in zip(index["feature_file"], column):
        given = lookup_slide_mpp(slide_mpp, f)
        if given is None and str(value).strip():
            given = float(value)
        if given is not None:
            by_file[os.fspath(f)] = given
    return by_file or None


def _check_export_folder(out):
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"Export folder '{out}' is a file; an export writes a folder.")
    if out.is_dir() and any(out.iterdir()) and not (out / EXPORT_MARK).is_file():
        shown = sorted(p.name for p in out.iterdir())[:3]
        raise ValueError(
            f"Export folder '{out}' holds other files ({', '.join(shown)}...) that an export "
            "could overwrite: give a new or empty folder (an earlier export's is reused)."
        )


def export_features(features, out, layout, *, slide_mpp=None):
    """Write the slides of a feature index in the layout of TRIDENT, CLAM or STAMP.

    This package names its feature files ``<slide>.<spec key>.h5`` (the key tells the
    settings apart); the other tools look for plain ``<slide>.h5`` in their own folders.
    Each slide is written as the tool writes it, named by the slide file's stem:

    * ``"trident"``: ``out/<mag>x_<size>px_0px_overlap/features_<encoder>/<slide>.h5``,
      ``features`` and ``coords`` (level-0 pixels) with TRIDENT's attributes
      (``patch_size``, ``patch_size_level0``, ``level0_magnification``,
      ``target_magnification``, ...), the magnification being 10 / µm per pixel.
    * ``"clam"``: ``out/h5_files/<slide>.h5`` (``features``, int32 ``coords``),
      ``out/pt_files/<slide>.pt`` (the features tensor) and ``out/dataset.csv``
      (``case_id``, ``slide_id``, ``sample_id``; add CLAM's ``label`` column).
    * ``"stamp"``: ``out/<encoder>/<slide>.h5`` (``feats``, ``coords`` in µm, ``unit``,
      ``tile_size_um``, ``tile_size_px``, ``extractor``, ``feat_type``) and
      ``out/slide_table.csv`` (``PATIENT``, ``FILENAME``); slides without tiles are left
      out, as STAMP leaves them. Features stay float32 where STAMP stores float16.

    Parameters
    ----------
    features : str or Path
        A features folder (its ``index.csv``) or an index file.
    out : str or Path
        A new or empty folder, or one written by an earlier export.
    layout : {"trident", "clam", "stamp"}
    slide_mpp : float or dict, optional
        Level-0 µm per pixel of the slides whose coordinates are stored in µm (STAMP
        files), where the index has no ``slide_mpp`` column.

    Returns
    -------
    written : pandas.DataFrame
        ``sample_id``, ``patient_id``, ``name`` (the file stem written) and ``path`` per
        slide exported.

    Examples
    --------
    >>> from he2rna_sklearn.features import export_features
    >>> export_features("features/", "trident_job/", "trident")  # doctest: +SKIP
    """
    if layout not in EXPORT_LAYOUTS:
        raise ValueError(f"layout must be one of {list(EXPORT_LAYOUTS)}, got {layout!r}.")
    index = read_index(features)
    out = Path(out)
    _check_export_folder(out)
    names = [
        Path(p).stem if str(p).strip() else ""
        for p in (index["slide_path"] if "slide_path" in index else [""] * len(index))
    ]
    by_file = _slide_mpp_by_file(index, slide_mpp)
    bags = []
    for i, f in enumerate(index["feature_file"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # µm without slide_mpp: refused by export_facts
            bag = read_bag(f, lazy=True, slide_mpp=by_file)
        names[i] = names[i] or str(bag.slide_id)
        bags.append(bag)
    dup = pd.Series(names)[pd.Series(names).duplicated()]
    if len(dup):
        raise ValueError(
            f"Two slides of '{features}' are named '{dup.iloc[0]}' (the slide file's stem, which "
            f"names the exported files): export them into two folders."
        )
    facts = [export_facts(bag, f) for bag, f in zip(bags, index["feature_file"])]
    out.mkdir(parents=True, exist_ok=True)
    (out / EXPORT_MARK).write_text("written by he2rna export; a later export may overwrite\n")
    rows = []
    for (_, row), bag, fact, name in zip(index.iterrows(), bags, facts, names):
        features_array = np.asarray(bag)
        if layout == "trident":
            path = out / trident_folder(fact) / f"{name}.h5"
            dims = _slide_dimensions(row.get("slide_path"), fact["slide_mpp"])
            write_trident_h5(path, features_array, fact, name=name, slide_dimensions=dims)
        elif layout == "clam":
            path, _ = write_clam_files(out, features_array, fact, name=name)
        else:
            if not bag.n_tiles:
                continue
            path = out / safe_name(fact["encoder"]) / f"{name}.h5"
            write_stamp_h5(path, features_array, fact)
        rows.append(
            {
                "sample_id": row["sample_id"],
                "patient_id": row["patient_id"],
                "name": name,
                "path": os.fspath(path),
            }
        )
    written = pd.DataFrame(rows, columns=["sample_id", "patient_id", "name", "path"])
    if layout == "clam":
        table = written.rename(columns={"patient_id": "case_id", "name": "slide_id"})
        _write_csv(table[["case_id", "slide_id", "sample_id"]], out / "dataset.csv")
    elif layout == "stamp":
        table = pd.DataFrame(
            {"PATIENT": written["patient_id"], "FILENAME": [f"{n}.h5" for n in written["name"]]}
        )
        _write_csv(table, out / "slide_table.csv")
    return written


def _slide_dimensions(slide_path, slide_mpp):
    """The slide's level-0 (width, height), if its file is here to read (TRIDENT records
    them); else None."""
    from ..slides import SlideReader

    if not slide_path or not Path(slide_path).is_file():
        return None
    try:
        with SlideReader(slide_path, slide_mpp) as reader:
            return reader.dimensions
    except (OSError, ValueError):
        return None


def _write_csv(table, path):
    with atomic_write(path) as tmp:
        table.to_csv(tmp, index=False)
