"""Checks of the command line's inputs: feature files against their index rows, and
expression samples against the index (manifests and the index itself are read and written
by :mod:`he2rna_sklearn.features`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["CLIError", "check_bags_match_index", "match_expression"]


class CLIError(Exception):
    """An error in the user's input, shown as one line without a traceback."""


def _number(value):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _refuse(row, source, holds):
    return CLIError(
        f"Feature file '{row['feature_file']}' {holds}, but {source} lists it for sample "
        f"'{row['sample_id']}'"
        + (f" (slide '{row['slide_path']}')" if row.get("slide_path") else "")
        + ". Rerun 'he2rna featurize' (or 'he2rna index') into that folder to rebuild it."
    )


def check_bags_match_index(index, bags, source):
    """Refuse a feature file that holds another slide than its index row names.

    What a feature file says of its slide is compared with its row: the slide's SHA-256
    (``slide_fingerprint``, this package's files and indexes), the slide file's stem, the
    name the file was written under (``<slide>.<spec key>.h5``), the slide name that
    TRIDENT writes, the tile count; and, for a row without a slide file, a slide id that
    is another row's sample id (feature files permuted in the index).
    """
    samples = set(index["sample_id"])
    for (_, row), bag in zip(index.iterrows(), bags):
        _check_identity(row, bag, source, samples)
        n_tiles = _number(row.get("n_tiles"))
        if n_tiles is not None and n_tiles != bag.n_tiles:
            raise _refuse(row, source, f"holds {bag.n_tiles} tiles where the index says {n_tiles}")


def _written_as(name, slide_id, key):
    """Whether a file name is the cache name of this slide id and spec key:
    ``<slide id (its start, when too long)>.<key>.h5``."""
    suffix = f".{key}.h5"
    return name.endswith(suffix) and slide_id.startswith(name[: -len(suffix)])


def _check_identity(row, bag, source, samples):
    """The slide a feature file says it holds, against its index row."""
    meta, slide_path = bag.meta, row.get("slide_path")
    if meta.get("format") != "he2rna-sklearn":  # other tools' files: TRIDENT's name
        name = meta.get("coords_name")
        if name and slide_path and str(name) not in (Path(slide_path).stem, row["sample_id"]):
            raise _refuse(row, source, f"holds slide '{name}'")
        return
    stored, listed = meta.get("slide_fingerprint"), row.get("slide_fingerprint")
    if stored and listed and str(stored) != str(listed):
        raise _refuse(row, source, f"holds slide '{bag.slide_id}' ({stored})")
    if slide_path and bag.slide_id != Path(slide_path).stem:
        raise _refuse(row, source, f"holds slide '{bag.slide_id}'")
    key = meta.get("spec_key")
    if key and not _written_as(Path(row["feature_file"]).name, str(bag.slide_id), key):
        raise _refuse(row, source, f"holds slide '{bag.slide_id}' (written as {key})")
    if not slide_path and bag.slide_id != row["sample_id"] and bag.slide_id in samples:
        raise _refuse(row, source, f"holds slide '{bag.slide_id}'")


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
