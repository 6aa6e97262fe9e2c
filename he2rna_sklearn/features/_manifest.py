"""Manifests: the CSV (or TSV) files that list slides, read in one place with one
vocabulary of columns (:data:`PATH_COLUMNS`, :data:`ID_COLUMNS`).

:func:`read_manifest` reads a manifest of slides to featurize; :func:`~._index.build_index`
reads one to match outside feature files, through the same :func:`read_table`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..datasets import default_patient_id

__all__ = [
    "ID_COLUMNS",
    "PATH_COLUMNS",
    "check_ids",
    "read_manifest",
    "read_table",
    "resolve_path",
]

#: Manifest columns that give a slide file, in order of preference. A manifest of slides
#: to featurize also takes a ``slide`` column as the file when it has none of these.
PATH_COLUMNS = ("slide_path", "path", "filename", "file")
#: Manifest columns that name a sample, in order of preference (matched to feature files
#: by :func:`build_index`).
ID_COLUMNS = ("sample_id", "slide_id", "slide", "case_id", "id")


def read_table(path, what):
    """A CSV (TSV for .tsv, .tab, .txt) read as strings, with one-line errors for a
    missing, empty or unparsable file."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} '{path}' is a directory, not a CSV file.")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: '{path}'.")
    if path.stat().st_size == 0:
        raise ValueError(f"{what} '{path}' is empty (0 bytes).")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab", ".txt") else ","
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        message = " ".join(str(exc).split())
        raise ValueError(f"Cannot read {what.lower()} '{path}' as CSV: {message}") from None


def check_ids(table, columns, source, *, allow_empty=()):
    """Refuse ids that would not match what they name: an id with spaces around it (a
    sample id ``" TCGA-..."`` meets no expression column), or an empty one in a column
    that has no fallback (``allow_empty`` names those that have one)."""
    for column in columns:
        if column not in table:
            continue
        values = table[column].fillna("").astype(str)
        padded = values[values != values.str.strip()]
        if len(padded):
            i = padded.index[0]
            raise ValueError(
                f"{column} {padded.iloc[0]!r} in {source} (row {i + 1}) has spaces around it; "
                "ids are matched exactly: remove the spaces."
            )
        if column in allow_empty:
            continue
        empty = values[values == ""]
        if len(empty):
            rows = [i + 1 for i in empty.index[:5]]
            raise ValueError(
                f"{source} has an empty {column} in rows {rows}: give every row one, or drop "
                f"the {column} column to use the defaults."
            )


def resolve_path(path, base):
    """A manifest's path, relative to the manifest's folder unless absolute."""
    return path if os.path.isabs(path) else os.fspath(Path(base) / path)


def read_manifest(source):
    """Read a manifest of slides to featurize.

    Parameters
    ----------
    source : str, Path or list of them
        A CSV (or TSV) with a slide file column (``slide_path``, or one of
        :data:`PATH_COLUMNS`, or ``slide``), relative to the manifest's folder or absolute,
        and optional ``sample_id`` (default: the file stem) and ``patient_id`` (default,
        also for an empty cell: :func:`~he2rna_sklearn.datasets.default_patient_id` of the
        sample). Or a list of slide files. Ids with spaces around them, and empty slide
        paths or sample ids, are errors naming the row.

    Returns
    -------
    manifest : pandas.DataFrame
        ``slide_path``, ``sample_id``, ``patient_id`` and the file's other columns. A slide
        listed twice, a sample id naming two slides, and a missing slide file are errors.

    Examples
    --------
    >>> from he2rna_sklearn.features import read_manifest
    >>> manifest = read_manifest("slides.csv")  # doctest: +SKIP
    """
    if not isinstance(source, (str, os.PathLike)):
        table = pd.DataFrame({"slide_path": [os.fspath(p) for p in source]})
        return _check_slides(table, "the slide list")
    path = Path(source)
    table = read_table(path, "Manifest")
    column = next((c for c in (*PATH_COLUMNS, "slide") if c in table.columns), None)
    if column is None:
        raise ValueError(
            f"Manifest '{path}' needs a 'slide_path' column (found {list(table.columns)})."
        )
    if table.empty:
        raise ValueError(f"Manifest '{path}' lists no slides (a header only).")
    table = table.rename(columns={column: "slide_path"})
    empty = table.index[table["slide_path"] == ""]
    if len(empty):
        raise ValueError(
            f"Manifest '{path}' has an empty {column} in rows {[i + 1 for i in empty[:5]]}: "
            "give every row its slide file."
        )
    table["slide_path"] = [resolve_path(p, path.parent) for p in table["slide_path"]]
    return _check_slides(table, f"manifest '{path}'")


def _check_slides(table, source):
    """Fill sample and patient ids, and check the slide list."""
    table["slide_path"] = table["slide_path"].astype(str)
    check_ids(table, ("sample_id", "patient_id"), source, allow_empty=("patient_id",))
    if "sample_id" not in table:
        table["sample_id"] = [Path(p).stem for p in table["slide_path"]]
    table["sample_id"] = table["sample_id"].astype(str)
    if "patient_id" not in table:
        table["patient_id"] = ""
    table["patient_id"] = [
        str(p) if str(p) else default_patient_id(s)  # an empty cell: the default patient
        for s, p in zip(table["sample_id"], table["patient_id"])
    ]
    real = table["slide_path"].map(os.path.realpath)
    dup = real[real.duplicated(keep=False)]
    if len(dup):
        rows = dup.index.tolist()
        raise ValueError(
            f"Slide '{table.loc[rows[0], 'slide_path']}' is listed more than once in {source} "
            f"(rows {[r + 1 for r in rows[:5]]})."
        )
    dup_ids = table["sample_id"][table["sample_id"].duplicated()]
    if len(dup_ids):
        raise ValueError(
            f"Sample id '{dup_ids.iloc[0]}' names more than one slide in {source}; give each "
            "slide its own sample_id (slides of one patient share patient_id)."
        )
    for i, path in enumerate(table["slide_path"]):
        if Path(path).is_dir():
            raise IsADirectoryError(
                f"Slide '{path}' ({source}, row {i + 1}) is a directory, not a slide file."
            )
        if not Path(path).is_file():
            raise FileNotFoundError(f"Slide file not found: '{path}' ({source}, row {i + 1}).")
    return table.reset_index(drop=True)
