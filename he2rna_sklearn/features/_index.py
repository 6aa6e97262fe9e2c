"""The slide index: which feature file holds which sample of which patient.

``index.csv`` is what ``he2rna fit``, ``evaluate``, ``predict`` and ``heatmap`` read: one row
per slide, with the columns of :data:`INDEX_COLUMNS` in that order (``sample_id``,
``patient_id`` and ``feature_file`` are required; a manifest's extra columns follow). It is
written in three places, all through :func:`write_index` (atomically, feature files
relative to the index when they lie below it): ``he2rna featurize``
(:func:`index_from_bags`, merged into an earlier run's index by :func:`merge_index`), the
demo, and :func:`~._build_index.build_index` (feature files made by other tools).
Manifests, the CSV files that list slides, are read by :mod:`._manifest`; a features folder
is exported in another tool's layout by :mod:`._export`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from .._io import atomic_write
from ._manifest import read_table, resolve_path
from ._store import read_bag

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "INDEX_COLUMNS",
    "INDEX_NAME",
    "check_index_compatible",
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
