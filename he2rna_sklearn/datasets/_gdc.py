"""GDC STAR per-sample expression files, assembled into one table.

The GDC's "STAR - Counts" workflow writes one ``*.rna_seq.augmented_star_gene_counts.tsv``
per aliquot, in a folder named by the GDC file id: a comment line (``# gene-model: GENCODE
v36``), a header ``gene_id gene_name gene_type unstranded stranded_first stranded_second
tpm_unstranded fpkm_unstranded fpkm_uq_unstranded``, four STAR summary rows
(``N_unmapped``, ``N_multimapping``, ``N_noFeature``, ``N_ambiguous``, with empty gene names
and normalised values), then one row per gene. The files do not name their sample: the GDC
sample sheet (downloaded with the files from the GDC portal's cart) does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._expression import _read_table, default_patient_id, tcga_sample_type

__all__ = ["STAR_COLUMNS", "load_gdc_star"]

#: The header of a GDC augmented STAR gene counts file.
STAR_COLUMNS = (
    "gene_id",
    "gene_name",
    "gene_type",
    "unstranded",
    "stranded_first",
    "stranded_second",
    "tpm_unstranded",
    "fpkm_unstranded",
    "fpkm_uq_unstranded",
)
_VALUES = {
    "counts": "unstranded",
    "unstranded": "unstranded",
    "stranded_first": "stranded_first",
    "stranded_second": "stranded_second",
    "tpm": "tpm_unstranded",
    "tpm_unstranded": "tpm_unstranded",
    "fpkm": "fpkm_unstranded",
    "fpkm_unstranded": "fpkm_unstranded",
    "fpkm_uq": "fpkm_uq_unstranded",
    "fpkm-uq": "fpkm_uq_unstranded",
    "fpkm_uq_unstranded": "fpkm_uq_unstranded",
}
#: The GDC's names (``sample_type``) of the TCGA barcode's sample type codes (characters
#: 14-15, the GDC's ``sample_type_id``), from the TCGA code tables; all are values of
#: ``sample_type`` in the GDC data dictionary (gdcdictionary ``schemas/sample.yaml``).
_TCGA_SAMPLE_TYPES = {
    "01": "Primary Tumor",
    "02": "Recurrent Tumor",
    "03": "Primary Blood Derived Cancer - Peripheral Blood",
    "04": "Recurrent Blood Derived Cancer - Bone Marrow",
    "05": "Additional - New Primary",
    "06": "Metastatic",
    "07": "Additional Metastatic",
    "08": "Human Tumor Original Cells",
    "09": "Primary Blood Derived Cancer - Bone Marrow",
    "10": "Blood Derived Normal",
    "11": "Solid Tissue Normal",
    "12": "Buccal Cell Normal",
    "13": "EBV Immortalized Normal",
    "14": "Bone Marrow Normal",
    "20": "Control Analyte",
    "40": "Recurrent Blood Derived Cancer - Peripheral Blood",
    "50": "Cell Lines",
    "60": "Primary Xenograft Tissue",
    "61": "Cell Line Derived Xenograft Tissue",
}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


#: What ``gdc-client download`` writes beside the data (NCI-GDC/gdc-client): its resumable
#: state in ``<file id>/logs/<file name>.parcel`` (and ``.parcel_*`` temporaries), the
#: annotations in ``<file id>/annotations.txt``; the portal adds ``gdc_manifest*.txt`` and
#: ``gdc_sample_sheet.<date>.tsv``.
_GDC_CLIENT_DIRS = {"logs"}
_NOT_DATA_PREFIXES = ("gdc_sample_sheet", "gdc_manifest")
_PARTIAL = ".partial"


def _is_table(path):
    name = path.name.lower()
    return name.endswith((".tsv", ".tsv.gz")) and not name.startswith(_NOT_DATA_PREFIXES)


def _star_files(source):
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if folder.is_file():
            return [folder]
        if not folder.is_dir():
            raise FileNotFoundError(f"GDC STAR folder or file not found: '{folder}'.")
        found = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and not _GDC_CLIENT_DIRS.intersection(p.relative_to(folder).parts[:-1])
        )
        partial = [
            p
            for p in found
            if p.name.endswith(_PARTIAL) and _is_table(p.with_name(p.name[: -len(_PARTIAL)]))
        ]
        if partial:
            raise ValueError(
                f"The GDC download under '{folder}' is incomplete: {len(partial)} file(s) are "
                f"still '{_PARTIAL}' (e.g. '{partial[0]}'); run the same gdc-client download "
                "again to finish them (it resumes), or remove them."
            )
        tables = [p for p in found if _is_table(p)]
        files = [p for p in tables if "star_gene_counts" in p.name.lower()] or tables
        if not files:
            raise ValueError(f"No GDC STAR counts files (*.tsv) under '{folder}'.")
        return files
    files = [Path(p) for p in source]
    if not files:
        raise ValueError("No GDC STAR files were given.")
    for p in files:
        if not p.is_file():
            raise FileNotFoundError(f"GDC STAR file not found: '{p}'.")
    return files


def _read_star(path, column, *, with_annotation):
    try:
        table = _read_table(path, sep="\t", comment="#", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"GDC STAR file '{path}' is empty (no header line).") from None
    if "gene_id" not in table.columns or column not in table.columns:
        raise ValueError(
            f"'{path}' is not a GDC STAR counts file with a '{column}' column: its header is "
            f"{list(table.columns)[:9]}; expected {list(STAR_COLUMNS)}."
        )
    table = table[~table["gene_id"].str.startswith("N_")]
    values = pd.to_numeric(table[column].str.strip(), errors="coerce")
    bad = values.isna()
    if bad.any():
        genes = table["gene_id"][bad].tolist()
        raise ValueError(
            f"Non-numeric or empty '{column}' values in '{path}' for genes {genes[:5]}"
            + (f" and {int(bad.sum()) - 5} more." if bad.sum() > 5 else ".")
        )
    series = pd.Series(values.to_numpy(dtype=np.float64), index=table["gene_id"].to_numpy())
    dup = series.index[series.index.duplicated()].unique().tolist()
    if dup:
        raise ValueError(f"Duplicated gene ids in '{path}': {dup[:5]}.")
    annotation = None
    if with_annotation:
        cols = [c for c in ("gene_name", "gene_type") if c in table.columns]
        annotation = table.set_index("gene_id")[cols]
    return series, annotation


def _barcode_sample_type(sample_id):
    """The GDC sample type of a TCGA sample barcode, or None."""
    try:
        code = tcga_sample_type(sample_id)
    except ValueError:
        return None
    return _TCGA_SAMPLE_TYPES.get(code)


def _wanted_sample_types(sample_types):
    """``sample_types`` as a set of GDC names; two-digit TCGA codes are translated."""
    wanted = [sample_types] if isinstance(sample_types, str) else list(sample_types)
    names = set()
    for t in wanted:
        t = str(t).strip()
        if t.isdigit() and len(t) <= 2:
            if t.zfill(2) not in _TCGA_SAMPLE_TYPES:
                raise ValueError(
                    f"sample_types: '{t}' is not a TCGA sample type code; known codes are "
                    f"{sorted(_TCGA_SAMPLE_TYPES)} (01 = Primary Tumor)."
                )
            t = _TCGA_SAMPLE_TYPES[t.zfill(2)]
        names.add(t)
    if not names:
        raise ValueError("sample_types is empty; pass None to keep every sample.")
    return names


def _sample_sheet(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GDC sample sheet not found: '{path}'.")
    try:
        sheet = _read_table(path, sep="\t" if path.suffix.lower() != ".csv" else ",", dtype=str)
    except pd.errors.EmptyDataError:
        raise ValueError(f"GDC sample sheet '{path}' is empty (no header line).") from None
    needed = {"File Name", "Sample ID"}
    if not needed <= set(sheet.columns):
        raise ValueError(
            f"'{path}' is not a GDC sample sheet: it needs the columns {sorted(needed)} "
            f"(found {list(sheet.columns)[:8]})."
        )
    return sheet.set_index("File Name")


_DUPLICATES = ("error", "sum", "max", "first", "mean")


def _by_gene_name(expression, genes, duplicates):
    """Columns named by gene symbol, the ids sharing one merged by ``duplicates``."""
    names = genes["gene_name"].astype(str)
    dup_names = names[names.duplicated()].unique().tolist()
    if dup_names and duplicates == "error":
        more = f" and {len(dup_names) - 5} more" if len(dup_names) > 5 else ""
        raise ValueError(
            f"Gene names {dup_names[:5]}{more} name several gene ids (GENCODE's _PAR_Y "
            "copies and multi-copy genes); pass duplicates='sum' (or 'max', 'first', "
            "'mean') to merge them, or use gene_column='gene_id'."
        )
    if duplicates == "first" or not dup_names:
        kept = ~names.duplicated().to_numpy()
        expression = expression.loc[:, kept].set_axis(names[kept].to_numpy(), axis=1)
        return expression, genes.loc[kept].set_index("gene_name")
    grouped = expression.T.groupby(names.to_numpy(), sort=False)
    expression = getattr(grouped, duplicates)().T

    def joined(values):
        return ";".join(dict.fromkeys(values.astype(str)))

    genes = genes.groupby("gene_name", sort=False).agg(joined).reindex(expression.columns)
    return expression, genes.rename_axis("gene_name")


def load_gdc_star(
    files,
    *,
    value="fpkm_uq",
    sample_sheet=None,
    sample_ids=None,
    sample_types=None,
    gene_column="gene_id",
    duplicates="error",
    log_transform=False,
    drop_zero_median=False,
    patient_id="tcga",
):
    """Read GDC STAR per-sample expression files into one samples x genes table.

    Parameters
    ----------
    files : str, Path or sequence of them
        A folder or a list of files. A folder is searched recursively for
        ``*star_gene_counts.tsv`` (else any ``*.tsv`` or ``*.tsv.gz``), as ``gdc-client
        download`` lays them out: ``<file id>/<file name>``. What gdc-client writes beside
        them is skipped (``<file id>/logs/*.parcel``, ``annotations.txt``), and so are the
        portal's ``gdc_manifest*`` and ``gdc_sample_sheet*`` files; a ``*.tsv.partial``
        file (an unfinished download) is an error.
    value : {"fpkm_uq", "tpm", "fpkm", "counts", "stranded_first", "stranded_second"}, \
default="fpkm_uq"
        The column to read: FPKM-UQ (the paper's target, as log10(1 + x)), TPM, FPKM, or
        the unstranded read counts (``"counts"``) or a stranded count column.
    sample_sheet : str or Path, optional
        The GDC sample sheet (TSV with ``File Name``, ``Sample ID`` and, optionally,
        ``Case ID`` and ``Sample Type``) that names each file's sample (TCGA barcode) and
        patient.
    sample_ids : dict, optional
        Sample id per file, keyed by path, file name or GDC file id (the file's folder);
        overrides the sample sheet.
    sample_types : str or collection of str, optional
        Keep only samples of these types, as the GDC names them (e.g. ``["Primary
        Tumor"]``) or as TCGA sample type codes (``"01"`` is Primary Tumor, ``"11"`` Solid
        Tissue Normal).
        A sample's type is the sample sheet's ``Sample Type``. Sheets without that column
        exist (the GDC data dictionary deprecated ``sample_type`` for ``tissue_type`` and
        ``tumor_descriptor``); then, and without a sheet, a TCGA sample barcode's type code
        (characters 14-15) gives it. A sample with neither is an error that says so.
    gene_column : {"gene_id", "gene_name"}, default="gene_id"
        Name genes by Ensembl id (with version, unique) or by symbol. GENCODE gives some
        symbols several gene ids: the ``_PAR_Y`` copies of pseudoautosomal genes (``CD99``,
        zero in GDC files, whose reference masks the Y copies) and multi-copy families
        (``5S_rRNA``, ``Y_RNA``...); ``duplicates`` says what to do with them.
    duplicates : {"error", "sum", "max", "first", "mean"}, default="error"
        With ``gene_column="gene_name"``, how to merge the gene ids that share a symbol:
        ``"error"`` names them; ``"sum"`` adds their values (counts and TPM stay additive,
        and a zero ``_PAR_Y`` copy leaves its gene unchanged); ``"max"`` keeps the highest;
        ``"first"`` keeps the first id in file order; ``"mean"`` averages them (it halves a
        gene whose ``_PAR_Y`` copy is zero). Values are merged before ``drop_zero_median``
        and ``log_transform``. The merged ids are listed, joined by ``;``, in
        ``genes["gene_id"]``.
    log_transform : bool, default=False
        Apply log10(1 + x).
    drop_zero_median : bool, default=False
        Drop genes whose median over samples is zero, as the paper did.
    patient_id : {"tcga", None}, default="tcga"
        Patients of samples missing from the sample sheet's ``Case ID``: the first 12
        characters of TCGA barcodes (other ids are their own patient), or None (each sample
        is its own patient).

    Returns
    -------
    data : sklearn.utils.Bunch
        ``expression`` (DataFrame, samples x genes, float), ``patient_ids`` (Series by
        sample), ``genes`` (DataFrame by gene: ``gene_id``/``gene_name``, ``gene_type``),
        ``sample_types`` (Series, or None when no sample's type is known) and ``files`` (Series:
        each sample's file).

    Raises
    ------
    ValueError
        If a file is not a STAR counts file, lacks genes the others have, or two files
        name the same sample; the message names the file.

    Examples
    --------
    >>> from he2rna_sklearn.datasets import load_gdc_star
    >>> data = load_gdc_star("gdc_download/", sample_sheet="gdc_sample_sheet.tsv",
    ...                      value="fpkm_uq", log_transform=True)  # doctest: +SKIP
    >>> data.expression.shape  # doctest: +SKIP
    (92, 60660)
    """
    if duplicates not in _DUPLICATES:
        raise ValueError(f"duplicates must be one of {list(_DUPLICATES)}, got {duplicates!r}.")
    column = _VALUES.get(str(value).lower())
    if column is None:
        raise ValueError(f"value must be one of {sorted(set(_VALUES))}, got {value!r}.")
    if gene_column not in ("gene_id", "gene_name"):
        raise ValueError(f"gene_column must be 'gene_id' or 'gene_name', got {gene_column!r}.")
    if patient_id not in ("tcga", None):
        raise ValueError(f"patient_id must be 'tcga' or None, got {patient_id!r}.")
    paths = _star_files(files)
    sheet = _sample_sheet(sample_sheet) if sample_sheet is not None else None
    typed_sheet = sheet is not None and "Sample Type" in sheet.columns
    wanted = None if sample_types is None else _wanted_sample_types(sample_types)

    samples, cases, types = [], [], []
    for p in paths:
        sid = case = stype = None
        if sample_ids is not None:
            for key in (os.fspath(p), p.name, p.parent.name):
                if key in sample_ids:
                    sid = str(sample_ids[key])
                    break
        if sheet is not None and p.name in sheet.index:
            row = sheet.loc[p.name]
            sid = sid or str(row["Sample ID"])
            case = row.get("Case ID")
            stype = row.get("Sample Type")
        if sid is None:
            if sheet is not None:
                raise ValueError(f"'{p.name}' is not in the sample sheet '{sample_sheet}'.")
            sid = p.parent.name if _UUID.match(p.parent.name) else p.name.split(".")[0]
        if "," in sid:
            raise ValueError(f"File '{p}' belongs to several samples ({sid}); pass sample_ids.")
        if not typed_sheet:
            stype = _barcode_sample_type(sid)
        samples.append(sid)
        cases.append(None if case is None or pd.isna(case) else str(case).split(",")[0].strip())
        types.append(None if stype is None or pd.isna(stype) else str(stype))
    untyped = [samples[i] for i, t in enumerate(types) if t is None]
    if wanted is not None and not typed_sheet and untyped:
        where = (
            f"the sample sheet '{sample_sheet}' has no 'Sample Type' column (newer GDC sheets "
            "may list 'Tissue Type' and 'Tumor Descriptor' instead)"
            if sheet is not None
            else "no sample sheet was given"
        )
        raise ValueError(
            f"sample_types={sorted(wanted)} needs each sample's type, but {where}, and "
            f"samples {untyped[:5]} are not TCGA sample barcodes whose type code (characters "
            "14-15) stands in for it. Give a sample sheet with a 'Sample Type' column, or "
            "pass sample_types=None and only the files to keep."
        )
    keep = [i for i, t in enumerate(types) if wanted is None or t in wanted]
    if not keep:
        raise ValueError(
            f"No file has a sample type in {sorted(wanted)}; the files' types are "
            f"{sorted({str(t) for t in types})}."
        )
    dup = pd.Index([samples[i] for i in keep])
    dup = dup[dup.duplicated()].unique().tolist()
    if dup:
        raise ValueError(
            f"Sample(s) {dup[:5]} have more than one file (e.g. several aliquots); pick one "
            "per sample with sample_ids or a filtered list of files."
        )

    columns, genes = [], None
    for n, i in enumerate(keep):
        series, annotation = _read_star(paths[i], column, with_annotation=n == 0)
        if genes is None:
            genes = annotation
            reference = series.index
        elif not series.index.equals(reference):
            missing = reference.difference(series.index)
            extra = series.index.difference(reference)
            if len(missing) or len(extra):
                raise ValueError(
                    f"'{paths[i]}' has other genes than '{paths[keep[0]]}' ({len(missing)} "
                    f"missing, e.g. {missing[:3].tolist()}; {len(extra)} extra, e.g. "
                    f"{extra[:3].tolist()}): mixed gene models?"
                )
            series = series.reindex(reference)
        columns.append(series.to_numpy())
    index = pd.Index([samples[i] for i in keep], name="sample_id")
    expression = pd.DataFrame(np.column_stack(columns).T, index=index, columns=reference)
    genes = genes.reindex(reference).rename_axis("gene_id").reset_index()
    if gene_column == "gene_name":
        expression, genes = _by_gene_name(expression, genes, duplicates)
    else:
        genes = genes.set_index("gene_id")
    expression.columns.name = "gene"
    if drop_zero_median:
        kept = expression.median(axis=0) != 0
        expression = expression.loc[:, kept]
        genes = genes.loc[kept.to_numpy()]
    if log_transform:
        if (expression.to_numpy() < 0).any():
            raise ValueError(f"log_transform=True needs non-negative '{column}' values.")
        expression = np.log10(1.0 + expression)
    patients = []
    for i in keep:
        if cases[i]:
            patients.append(cases[i])
        elif patient_id == "tcga":
            patients.append(default_patient_id(samples[i]))
        else:
            patients.append(samples[i])
    return Bunch(
        expression=expression,
        patient_ids=pd.Series(patients, index=index, name="patient_id"),
        genes=genes,
        sample_types=(
            pd.Series([types[i] for i in keep], index=index, name="sample_type")
            if typed_sheet or any(types[i] is not None for i in keep)
            else None
        ),
        files=pd.Series([os.fspath(paths[i]) for i in keep], index=index, name="file"),
    )
