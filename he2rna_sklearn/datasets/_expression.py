"""Reading gene expression tables (TCGA-style and others)."""

from __future__ import annotations

import gzip
import re
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

__all__ = [
    "PRIMARY_TUMOUR",
    "default_patient_id",
    "load_expression",
    "tcga_patient_id",
    "tcga_sample_type",
]

#: TCGA sample type code of primary solid tumours (barcode characters 14-15), the samples
#: the HE2RNA paper trained and evaluated on: ``load_expression(..., sample_types="01")``.
PRIMARY_TUMOUR = "01"

_TCGA = re.compile(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}", re.IGNORECASE)
#: Column names that identify genes (annotation columns of a genes x samples table).
_GENE_COLUMNS = {
    "entrez",
    "entrez_id",
    "entrezid",
    "gene",
    "gene_id",
    "gene_name",
    "symbol",
    "hugo_symbol",
    "ensembl",
    "ensembl_id",
    "ensembl_gene_id",
    "id",
    "name",
    "description",
}
#: Column names that identify samples (first column of a samples x genes table).
_SAMPLE_COLUMNS = {
    "sample",
    "sample_id",
    "samples",
    "barcode",
    "case",
    "case_id",
    "patient",
    "patient_id",
    "slide",
    "slide_id",
}


def tcga_patient_id(sample_id):
    """Patient id of a TCGA barcode: its first 12 characters (``TCGA-XX-XXXX``).

    Examples
    --------
    >>> tcga_patient_id("TCGA-4N-A93T-01A-11R")
    'TCGA-4N-A93T'
    """
    sample_id = str(sample_id)
    if not _TCGA.match(sample_id):
        raise ValueError(f"'{sample_id}' is not a TCGA barcode (TCGA-XX-XXXX...).")
    return sample_id[:12].upper()


def default_patient_id(sample_id):
    """The patient of a sample given without one: the TCGA patient of a TCGA barcode (its
    first 12 characters), else the sample id itself (one patient per sample).

    Examples
    --------
    >>> default_patient_id("TCGA-4N-A93T-01A-11R"), default_patient_id("slide-7")
    ('TCGA-4N-A93T', 'slide-7')
    """
    sample_id = str(sample_id)
    return tcga_patient_id(sample_id) if _TCGA.match(sample_id) else sample_id


def tcga_sample_type(sample_id):
    """TCGA sample type code of a barcode: its characters 14-15 (``01`` primary tumour).

    ``01`` is a primary solid tumour, ``02`` a recurrent one, ``06`` a metastasis, ``11``
    solid normal tissue (the GDC's code tables list them all).

    Examples
    --------
    >>> tcga_sample_type("TCGA-4N-A93T-01A-11R")
    '01'
    """
    sample_id = str(sample_id)
    code = sample_id[13:15]
    if not _TCGA.match(sample_id) or sample_id[12:13] != "-" or not code.isdigit():
        raise ValueError(
            f"'{sample_id}' has no TCGA sample type: expected a sample barcode "
            "TCGA-XX-XXXX-NN... whose characters 14-15 are the type (01 = primary tumour)."
        )
    return code


def _keep_sample_types(expression, sample_types, path):
    """Rows of ``expression`` whose TCGA sample type is in ``sample_types``."""
    wanted = [sample_types] if isinstance(sample_types, str) else list(sample_types)
    wanted = {str(t).zfill(2) for t in wanted}
    if not wanted or not all(t.isdigit() and len(t) == 2 for t in wanted):
        raise ValueError(
            f"sample_types must be TCGA sample type codes such as '01' (primary tumour), got "
            f"{sample_types!r}."
        )
    codes, unknown = [], []
    for sample in expression.index:
        try:
            codes.append(tcga_sample_type(sample))
        except ValueError:
            unknown.append(sample)
    if unknown:
        raise ValueError(
            f"sample_types={sample_types!r} needs TCGA sample barcodes (TCGA-XX-XXXX-01...), "
            f"but '{path}' has samples {unknown[:5]} without one; pass sample_types=None "
            "and select the samples yourself."
        )
    keep = np.isin(codes, sorted(wanted))
    if not keep.any():
        raise ValueError(
            f"No sample of '{path}' has sample type {sorted(wanted)}; its types are "
            f"{sorted(set(codes))}."
        )
    return expression.loc[keep]


_GZIP_MAGIC = b"\x1f\x8b"


def _compression(path):
    """``"gzip"`` or None, from the file's first bytes (not its name).

    A file named ``.gz`` that is not gzip-compressed is an error naming it: it may be
    plain text, but also a zip archive or anything else.
    """
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == _GZIP_MAGIC:
        return "gzip"
    if head[:4] == b"PK\x03\x04" and not str(path).lower().endswith(".gz"):
        raise ValueError(
            f"'{path}' is a zip archive (an Excel .xlsx workbook is one), not a CSV/TSV "
            "table: export or unzip the table first."
        )
    if str(path).lower().endswith(".gz"):
        what = (
            "a zip archive (unzip it and give the table inside)"
            if head[:2] == b"PK"
            else f"not gzip-compressed (it starts with {head!r}); rename it without .gz if "
            "it is a plain table"
        )
        raise ValueError(f"'{path}' is named .gz but is {what}.")
    return None


@contextmanager
def _reading(path, compression=None):
    """Turn what a damaged, binary or mislabeled table raises into one ValueError naming
    the file and what is wrong."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(
            f"'{path}' is a corrupt or truncated gzip file ({exc}); download or compress it again."
        ) from None
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"'{path}' is not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} at "
            f"position {exc.start}): a binary file, or text in another encoding; save it as a "
            "UTF-8 CSV or TSV table."
        ) from None
    except pd.errors.ParserError as exc:
        detail = " ".join(str(exc).split())
        hint = "; a corrupt gzip file does this too (check it with gzip -t)" if compression else ""
        raise ValueError(
            f"'{path}' has rows that do not parse as CSV/TSV: {detail}{hint}."
        ) from None


def _read_table(path, **kwargs):
    """``pd.read_csv`` of a file whose compression comes from its content; errors name it."""
    compression = _compression(path)
    with _reading(path, compression):
        return pd.read_csv(path, compression=compression, **kwargs)


def _separator(path):
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".tsv", ".tab", ".txt")):
        return "\t"
    if name.endswith(".csv"):
        return ","
    opener = gzip.open if _compression(path) == "gzip" else open
    with _reading(path), opener(path, "rt", encoding="utf-8") as fh:
        header = fh.readline()
    return "\t" if "\t" in header else ","


def _numeric_fraction(col):
    return pd.to_numeric(col, errors="coerce").notna().mean()


def load_expression(
    path,
    *,
    orient="auto",
    gene_column=None,
    log_transform=False,
    drop_zero_median=False,
    patient_id="tcga",
    sample_types=None,
    sample_ids=None,
):
    """Read a gene expression table into a samples x genes DataFrame.

    Accepts CSV or TSV, optionally gzip-compressed, with genes as rows and samples as
    columns (as GDC and most R packages write them) or the transpose. Leading non-numeric
    columns of a genes x samples table (e.g. ``entrez``, ``symbol``) are gene annotations.

    Parameters
    ----------
    path : str or Path
    orient : {"auto", "genes_x_samples", "samples_x_genes"}, default="auto"
        ``"auto"`` looks for ``sample_ids`` (when given) in the header and in the first
        column; else it finds TCGA barcodes in the header (genes x samples) or in the first
        column (samples x genes); otherwise a table with more rows than numeric columns is
        read as genes x samples (genes outnumber samples). The orientation used is
        returned as ``orient``.
    gene_column : str, optional
        The annotation column naming genes in a genes x samples table. Default: the
        first of ``"symbol"``, ``"gene_name"`` (GDC) and ``"hugo_symbol"`` present, else
        the first column.
    log_transform : bool, default=False
        Apply the paper's log10(1 + x) (to FPKM-UQ or counts).
    drop_zero_median : bool, default=False
        Drop genes whose median over samples is zero, as the paper did.
    patient_id : {"tcga", None} or callable, default="tcga"
        How to map sample ids to patients: ``"tcga"`` takes the first 12 characters of
        TCGA barcodes (other ids are their own patient), None makes each sample its own
        patient, a callable maps one sample id to a patient id.
    sample_types : str or sequence of str, optional
        Keep only the TCGA samples of these sample types (barcode characters 14-15).
        ``"01"`` (:data:`PRIMARY_TUMOUR`) keeps primary tumours, the paper's choice; it
        drops normal tissue (``11``), metastases (``06``) and recurrences (``02``). Applied
        before ``drop_zero_median``, so medians are over the kept samples. Every sample id
        must then be a TCGA sample barcode. Default: keep all samples.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``expression`` (DataFrame, samples x genes, float), ``patient_ids`` (Series indexed
        by sample), ``genes`` (DataFrame of gene annotations, or None) and ``orient`` (how
        the table was read).

    Raises
    ------
    ValueError
        On duplicated sample or gene ids, non-numeric cells or missing values, naming the
        offending samples and genes.

    Examples
    --------
    >>> from he2rna_sklearn.datasets import load_expression
    >>> data = load_expression("tcga-coadread-rsem-counts.csv.gz",
    ...                        log_transform=True)  # doctest: +SKIP
    >>> data.expression.shape  # doctest: +SKIP
    (92, 17045)

    The paper's samples, primary tumours only:

    >>> data = load_expression("tcga-expression.tsv.gz", log_transform=True,
    ...                        sample_types="01")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"Expression table '{path}' is a directory, not a file.")
    if not path.is_file():
        raise FileNotFoundError(f"Expression table not found: '{path}'.")
    if path.stat().st_size == 0:
        raise ValueError(f"Expression table '{path}' is empty (0 bytes).")
    if orient not in ("auto", "genes_x_samples", "samples_x_genes"):
        raise ValueError(
            f"orient must be 'auto', 'genes_x_samples' or 'samples_x_genes', got {orient!r}."
        )
    sep = _separator(path)
    try:
        raw = _read_table(path, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"Expression table '{path}' is empty (no header line).") from None
    if raw.shape[1] < 2:
        raise ValueError(f"'{path}' has fewer than 2 columns; is the separator right?")
    # pandas renames repeated header names ("x", "x.1"); read the header as written.
    header = _read_table(path, sep=sep, header=None, nrows=1, dtype=str).iloc[0].tolist()
    header = [str(h) for h in header]

    is_tcga = [bool(_TCGA.match(h)) for h in header]
    if orient == "auto" and sample_ids is not None:
        orient = _orient_from_ids(sample_ids, header[1:], raw.iloc[:, 0])
    if orient == "auto":
        first_tcga = raw.iloc[:, 0].map(lambda v: bool(_TCGA.match(v))).mean()
        if sum(is_tcga) >= max(1, len(header) // 2):
            orient = "genes_x_samples"
        elif first_tcga > 0.5 or header[0].lower() in _SAMPLE_COLUMNS:
            orient = "samples_x_genes"
        elif header[0].lower() in _GENE_COLUMNS:
            orient = "genes_x_samples"
        else:
            n_numeric = sum(_numeric_fraction(raw[c]) > 0.9 for c in raw.columns[1:])
            orient = "genes_x_samples" if raw.shape[0] > n_numeric else "samples_x_genes"

    genes = None
    if orient == "genes_x_samples":
        # Leading annotation columns: non-numeric, or named like gene ids, or (in a TCGA
        # table) anything before the first barcode.
        n_annot = 0
        while n_annot < raw.shape[1] - 1 and (
            _numeric_fraction(raw.iloc[:, n_annot]) < 0.9
            or header[n_annot].lower() in _GENE_COLUMNS
            or (any(is_tcga) and not is_tcga[n_annot])
        ):
            n_annot += 1
        n_annot = max(n_annot, 1)
        annot = raw.iloc[:, :n_annot]
        if gene_column is None:
            names = [c for c in ("symbol", "gene_name", "hugo_symbol") if c in annot.columns]
            gene_column = names[0] if names else annot.columns[0]
        elif gene_column not in annot.columns:
            raise ValueError(
                f"gene_column={gene_column!r} is not an annotation column of '{path}' "
                f"({list(annot.columns)})."
            )
        gene_ids = annot[gene_column].astype(str)
        values = raw.iloc[:, n_annot:].set_axis(gene_ids, axis=0).T
        values.index = header[n_annot:]
        genes = annot.set_index(gene_ids).rename_axis("gene") if n_annot > 1 else None
    else:
        values = raw.set_index(raw.columns[0])
        values.columns = header[1:]
    values.index = values.index.astype(str)
    values.columns = values.columns.astype(str)
    values.index.name, values.columns.name = "sample_id", "gene"

    dup_samples = values.index[values.index.duplicated()].unique().tolist()
    if dup_samples:
        raise ValueError(f"Duplicated sample ids in '{path}': {dup_samples[:10]}.")
    dup_genes = values.columns[values.columns.duplicated()].unique().tolist()
    if dup_genes:
        hint = " Choose another gene_column (e.g. 'entrez')." if genes is not None else ""
        raise ValueError(f"Duplicated gene ids in '{path}': {dup_genes[:10]}.{hint}")

    stripped = values.apply(lambda c: c.str.strip())
    missing = stripped.isin(["", "NA", "NaN", "nan", "NULL", "null"])
    numeric = stripped.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() & ~missing
    if bad.to_numpy().any():
        rows, cols = np.nonzero(bad.to_numpy())
        examples = [
            f"{values.index[r]}/{values.columns[c]}={values.iat[r, c]!r}"
            for r, c in zip(rows[:5], cols[:5])
        ]
        raise ValueError(
            f"Non-numeric cells in '{path}' (sample/gene=value): {examples}"
            + (f" and {len(rows) - 5} more." if len(rows) > 5 else ".")
        )
    if missing.to_numpy().any():
        samples = values.index[missing.any(axis=1)].tolist()
        gene_ids_missing = values.columns[missing.any(axis=0)].tolist()
        raise ValueError(
            f"Missing values (NaN) in '{path}' in samples {samples[:10]} and genes "
            f"{gene_ids_missing[:10]}; impute or drop them first."
        )
    expression = numeric.astype(np.float64)
    if sample_types is not None:
        expression = _keep_sample_types(expression, sample_types, path)
    if drop_zero_median:
        expression = expression.loc[:, expression.median(axis=0) != 0]
        if genes is not None:
            genes = genes.loc[expression.columns]
    if log_transform:
        if (expression.to_numpy() < 0).any():
            neg = expression.columns[(expression < 0).any(axis=0)].tolist()
            raise ValueError(
                f"log_transform=True needs non-negative values; genes {neg[:10]} in '{path}' "
                "have negative ones (already log-transformed?)."
            )
        expression = np.log10(1.0 + expression)

    if patient_id is None:
        patients = expression.index.to_list()
    elif patient_id == "tcga":
        patients = [default_patient_id(s) for s in expression.index]
    elif callable(patient_id):
        patients = [str(patient_id(s)) for s in expression.index]
    else:
        raise ValueError(f"patient_id must be 'tcga', None or a callable, got {patient_id!r}.")
    return Bunch(
        expression=expression,
        patient_ids=pd.Series(patients, index=expression.index, name="patient_id"),
        genes=genes,
        orient=orient,
    )


def _orient_from_ids(sample_ids, header, first_column):
    """The orientation in which more of ``sample_ids`` are found; "auto" on a tie."""

    def keys(ids):
        ids = [str(i) for i in ids]
        return set(ids) | {i[:15].upper() for i in ids if _TCGA.match(i)}

    wanted = keys(sample_ids)
    in_header = len(wanted & keys(header))
    in_rows = len(wanted & keys(first_column))
    if in_header > in_rows:
        return "genes_x_samples"
    if in_rows > in_header:
        return "samples_x_genes"
    return "auto"
