"""Checks of the command line's inputs: feature files against their index rows, and
expression samples against the index (manifests and the index itself are read and written
by :mod:`he2rna_sklearn.features`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["CLIError", "check_bags_match_index", "match_expression"]


class CLIError(Exception):
    """An error in the user's input, shown as one line without a traceback."""


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
