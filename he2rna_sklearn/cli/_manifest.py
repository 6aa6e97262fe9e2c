"""Manifests: which slides, which samples, which patients; matching them to expression."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .._io import atomic_write
from ..datasets import tcga_patient_id
from ..datasets._expression import _TCGA

__all__ = [
    "INDEX_NAME",
    "index_table",
    "match_expression",
    "merge_index",
    "read_index",
    "read_manifest",
    "slides_manifest",
    "write_index",
]

#: File name of the feature index that ``he2rna featurize`` writes in its output folder.
INDEX_NAME = "index.csv"
_PATH_COLUMNS = ("slide_path", "path", "slide", "filename", "file")
#: Columns of the feature index, in order (extra manifest columns follow).
INDEX_COLUMNS = ["slide_path", "sample_id", "patient_id", "feature_file", "n_tiles"]
#: What makes two runs' features comparable: they must agree to share one index.
_COMPARABLE = ("backbone", "weights", "tile_size", "mpp")


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
        if Path(path).is_dir():
            raise CLIError(
                f"Slide '{path}' ({source}, row {i + 1}) is a directory, not a slide file."
            )
        if not Path(path).is_file():
            raise CLIError(f"Slide file not found: '{path}' ({source}, row {i + 1}).")
    return table.reset_index(drop=True)


def read_table(path, what):
    """A CSV read as strings, with one-line errors for missing, empty or unparsable files."""
    path = Path(path)
    if path.is_dir():
        raise CLIError(f"{what} '{path}' is a directory, not a CSV file.")
    if not path.is_file():
        raise CLIError(f"{what} not found: '{path}'.")
    if path.stat().st_size == 0:
        raise CLIError(f"{what} '{path}' is empty (0 bytes).")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        message = " ".join(str(exc).split())
        raise CLIError(f"Cannot read {what.lower()} '{path}' as CSV: {message}") from None


def read_manifest(path):
    """Read a manifest CSV: ``slide_path`` (relative to the manifest's folder or
    absolute), optional ``sample_id`` (default: the file stem) and ``patient_id``
    (default: the TCGA patient of the sample id, else the sample id)."""
    path = Path(path)
    table = read_table(path, "Manifest")
    column = next((c for c in _PATH_COLUMNS if c in table.columns), None)
    if column is None:
        raise CLIError(
            f"Manifest '{path}' needs a 'slide_path' column (found {list(table.columns)})."
        )
    if table.empty:
        raise CLIError(f"Manifest '{path}' lists no slides (a header only).")
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
    table = read_table(path, "Feature index")
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


def index_table(manifest, bags, out):
    """The feature index of a featurize run: the manifest plus each slide's feature file
    (relative to ``out``; empty for a slide that failed) and tile count."""
    files, tiles = [], []
    for bag in bags:
        ok = bag is not None
        files.append(os.path.relpath(bag.meta["feature_file"], out) if ok else "")
        tiles.append(bag.n_tiles if ok else 0)
    table = manifest.assign(
        slide_path=[os.path.abspath(p) for p in manifest["slide_path"]],
        feature_file=files,
        n_tiles=tiles,
    )
    extra = [c for c in table.columns if c not in INDEX_COLUMNS]
    return table[INDEX_COLUMNS + extra]


def _facts(meta):
    """What makes features comparable across runs, from a bag's metadata."""
    return {k: meta.get(k) for k in _COMPARABLE}


def _same_features(a, b):
    if a["mpp"] is not None and b["mpp"] is not None:
        if abs(float(a["mpp"]) - float(b["mpp"])) > 0.1 * float(b["mpp"]):
            return False
    return all(str(a[k]) == str(b[k]) for k in _COMPARABLE if k != "mpp")


def merge_index(old, new, out, new_meta=None):
    """Merge a featurize run's index into the one already in ``out``, by slide.

    A row of the earlier index is replaced by the new row of the same slide (same sample
    id or same slide file); the others are kept, in their order; new slides follow. Runs
    whose features are not comparable (another backbone, weights, tile size or
    resolution) are refused rather than mixed.
    """
    if old is None or old.empty:
        return new
    if new_meta is not None:
        for f in old["feature_file"]:
            full = Path(out) / f if f else None
            if full is not None and full.is_file():
                from ..features import read_bag

                try:
                    before = _facts(read_bag(full, lazy=True, verify=False).meta)
                except (OSError, ValueError):
                    continue
                after = _facts(new_meta)
                if not _same_features(before, after):
                    raise CLIError(
                        f"'{Path(out) / INDEX_NAME}' lists features made with {before}; this "
                        f"run made {after}. The two cannot share one index: featurize into "
                        "another --out (this run's feature files are kept), or delete the "
                        "index to start over."
                    )
                break

    def path_key(p):
        return os.path.abspath(p) if p else ""

    by_id = {s: i for i, s in enumerate(new["sample_id"])}
    by_path = {path_key(p): i for i, p in enumerate(new["slide_path"])}
    rows, used = [], set()
    for _, row in old.iterrows():
        hits = {by_id.get(row.get("sample_id"))} | {by_path.get(path_key(row.get("slide_path")))}
        hits.discard(None)
        if len(hits) > 1:
            raise CLIError(
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


def write_index(table, out):
    """Write ``index.csv`` in ``out`` atomically; returns its path."""
    path = Path(out) / INDEX_NAME
    with atomic_write(path) as tmp:
        table.to_csv(tmp, index=False)
    return path


def check_bags_match_index(index, bags, source):
    """Refuse a feature file that holds another slide than its index row names."""
    for (_, row), bag in zip(index.iterrows(), bags):
        if bag.meta.get("format") != "he2rna-sklearn" or not row.get("slide_path"):
            continue  # other tools' files carry no slide identity
        expected = Path(row["slide_path"]).stem
        if bag.slide_id != expected:
            raise CLIError(
                f"Feature file '{row['feature_file']}' holds slide '{bag.slide_id}', but "
                f"{source} lists it for sample '{row['sample_id']}' (slide "
                f"'{row['slide_path']}'). Rerun 'he2rna featurize' into that folder to "
                "recompute it."
            )


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
