"""Manifests: which slides, which samples, which patients; matching them to expression."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..datasets import tcga_patient_id
from ..datasets._expression import _TCGA

__all__ = ["INDEX_NAME", "match_expression", "read_index", "read_manifest", "slides_manifest"]

#: File name of the feature index that ``he2rna featurize`` writes in its output folder.
INDEX_NAME = "index.csv"
_PATH_COLUMNS = ("slide_path", "path", "slide", "filename", "file")


class CLIError(Exception):
    """An error in the user's input, shown as one line without a traceback."""


def _default_patient(sample_id):
    return tcga_patient_id(sample_id) if _TCGA.match(sample_id) else sample_id


def _finish(table, source):
    """Fill sample and patient ids, and check the slide list."""
    table["slide_path"] = table["slide_path"].astype(str)
    if "sample_id" not in table:
        table["sample_id"] = [Path(p).stem for p in table["slide_path"]]
    table["sample_id"] = table["sample_id"].astype(str)
    if "patient_id" not in table:
        table["patient_id"] = [_default_patient(s) for s in table["sample_id"]]
    table["patient_id"] = table["patient_id"].astype(str)
    real = table["slide_path"].map(os.path.realpath)
    dup = real[real.duplicated(keep=False)]
    if len(dup):
        rows = dup.index.tolist()
        raise CLIError(
            f"Slide '{table.loc[rows[0], 'slide_path']}' is listed more than once in {source} "
            f"(rows {[r + 1 for r in rows[:5]]})."
        )
    dup_ids = table["sample_id"][table["sample_id"].duplicated()]
    if len(dup_ids):
        raise CLIError(
            f"Sample id '{dup_ids.iloc[0]}' names more than one slide in {source}; give each "
            "slide its own sample_id (slides of one patient share patient_id)."
        )
    for i, path in enumerate(table["slide_path"]):
        if not Path(path).is_file():
            raise CLIError(f"Slide file not found: '{path}' ({source}, row {i + 1}).")
    return table.reset_index(drop=True)


def read_manifest(path):
    """Read a manifest CSV: ``slide_path`` (relative to the manifest's folder or
    absolute), optional ``sample_id`` (default: the file stem) and ``patient_id``
    (default: the TCGA patient of the sample id, else the sample id)."""
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"Manifest not found: '{path}'.")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    column = next((c for c in _PATH_COLUMNS if c in table.columns), None)
    if column is None:
        raise CLIError(
            f"Manifest '{path}' needs a 'slide_path' column (found {list(table.columns)})."
        )
    table = table.rename(columns={column: "slide_path"})
    table["slide_path"] = [
        p if os.path.isabs(p) else os.fspath(path.parent / p) for p in table["slide_path"]
    ]
    return _finish(table, f"manifest '{path}'")


def slides_manifest(paths):
    """A manifest from slide paths given on the command line."""
    return _finish(pd.DataFrame({"slide_path": [os.fspath(p) for p in paths]}), "the command line")


def read_index(path):
    """Read the feature index written by ``he2rna featurize`` (a folder or its index.csv)."""
    path = Path(path)
    if path.is_dir():
        path = path / INDEX_NAME
    if not path.is_file():
        raise CLIError(
            f"Feature index not found: '{path}'. Run 'he2rna featurize ... --out DIR' first "
            "and pass DIR."
        )
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"sample_id", "patient_id", "feature_file"} - set(table.columns)
    if missing:
        raise CLIError(f"Feature index '{path}' lacks columns {sorted(missing)}.")
    table = table[table["feature_file"] != ""].reset_index(drop=True)
    for f in table["feature_file"]:
        full = f if os.path.isabs(f) else os.fspath(path.parent / f)
        if not Path(full).is_file():
            raise CLIError(f"Feature file not found: '{full}' (listed in '{path}').")
    table["feature_file"] = [
        f if os.path.isabs(f) else os.fspath(path.parent / f) for f in table["feature_file"]
    ]
    return table


def match_expression(index, expression, match="exact"):
    """Rows of ``expression`` aligned with ``index.sample_id``.

    ``match="exact"`` compares ids as they are; ``"tcga-sample"`` compares TCGA barcodes
    up to the sample (``TCGA-XX-XXXX-01``), so a slide barcode meets its RNA aliquot.
    """
    if match not in ("exact", "tcga-sample"):
        raise CLIError(f"--match must be 'exact' or 'tcga-sample', got {match!r}.")

    def key(ids):
        ids = [str(i) for i in ids]
        return ids if match == "exact" else [i[:15].upper() for i in ids]

    expr_keys = pd.Series(key(expression.index))
    dup = expr_keys[expr_keys.duplicated()]
    if len(dup):
        raise CLIError(f"Expression sample '{dup.iloc[0]}' appears twice after --match {match}.")
    lookup = dict(zip(expr_keys, range(len(expr_keys))))
    wanted = key(index["sample_id"])
    missing = [s for s, k in zip(index["sample_id"], wanted) if k not in lookup]
    if missing:
        hint = " (try --match tcga-sample)" if match == "exact" else ""
        raise CLIError(
            f"{len(missing)} of {len(index)} samples have no expression: {missing[:5]}{hint}."
        )
    return expression.iloc[[lookup[k] for k in wanted]].set_axis(index["sample_id"], axis=0)
