"""An index of feature files made by other tools: :func:`build_index`.

``he2rna featurize`` indexes its own files; for the ``.h5``, ``.pt`` and ``.npy`` files of
TRIDENT, CLAM, STAMP or HE2RNA's code, found anywhere under a folder and matched to a
manifest by file stem, :func:`build_index` writes the same ``index.csv`` (:mod:`._index`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from ..datasets import default_patient_id
from ..slides import lookup_slide_mpp
from ._index import _ordered, write_index
from ._manifest import ID_COLUMNS, PATH_COLUMNS, check_ids, read_table, resolve_path
from ._store import read_bag

__all__ = ["FEATURE_SUFFIXES", "build_index"]

#: Feature files by suffix, in order of preference when one stem has several.
_KIND_ORDER = {".h5": 0, ".hdf5": 0, ".pt": 1, ".pth": 1, ".npy": 2}
FEATURE_SUFFIXES = tuple(_KIND_ORDER)


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
