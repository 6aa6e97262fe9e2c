"""GDC STAR per-sample expression files, laid out as the GDC client downloads them."""

import gzip
import pickle
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from he2rna_sklearn.datasets import load_gdc_star

HEADER = (
    "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second"
    "\ttpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded"
)
GENES = [
    ("ENSG00000000003.15", "TSPAN6", "protein_coding"),
    ("ENSG00000000005.6", "TNMD", "protein_coding"),
    ("ENSG00000167286.10", "CD3D", "protein_coding"),
    ("ENSG00000119888.11", "EPCAM", "protein_coding"),
]


def _star_text(counts, *, genes=GENES, scale=1.0):
    """One augmented STAR gene counts file (GENCODE v36 layout)."""
    lines = ["# gene-model: GENCODE v36", HEADER]
    for name in ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"):
        lines.append(f"{name}\t\t\t812\t812\t812\t\t\t")
    for (gid, sym, kind), c in zip(genes, counts):
        lines.append(
            f"{gid}\t{sym}\t{kind}\t{c}\t{c // 2}\t{c - c // 2}\t{c * 0.5 * scale:.4f}"
            f"\t{c * 0.1 * scale:.4f}\t{c * 0.2 * scale:.4f}"
        )
    return "\n".join(lines) + "\n"


def _parcel_state(name):
    """What gdc-client's parcel leaves in ``<file id>/logs/``: a pickled download state."""
    return pickle.dumps({(0, 1024): f"{name} segment"}, protocol=2)


@pytest.fixture
def gdc_download(tmp_path):
    """Three aliquots as ``gdc-client download`` lays them out, plus the portal's sheet.

    gdc-client (NCI-GDC/gdc-client, ``parcel/download_stream.py``) writes each file to
    ``<dir>/<file id>/<file name>`` (as ``<file name>.partial`` until complete), keeps its
    resumable state in ``<dir>/<file id>/logs/<file name>.parcel`` (a pickle, with
    ``.parcel_*`` temporaries), and saves the file's annotations as
    ``<dir>/<file id>/annotations.txt`` (``download/client.py``).
    """
    root = tmp_path / "gdc"
    rows = []
    specs = [
        ("TCGA-AA-3489-01A", "TCGA-AA-3489", "Primary Tumor", [10, 0, 300, 40]),
        ("TCGA-AA-3489-11A", "TCGA-AA-3489", "Solid Tissue Normal", [12, 1, 30, 400]),
        ("TCGA-CM-4743-01A", "TCGA-CM-4743", "Primary Tumor", [7, 0, 90, 55]),
    ]
    for sample, case, kind, counts in specs:
        file_id = str(uuid.uuid5(uuid.NAMESPACE_URL, sample))
        name = f"{uuid.uuid5(uuid.NAMESPACE_DNS, sample)}.rna_seq.augmented_star_gene_counts.tsv"
        folder = root / file_id
        (folder / "logs").mkdir(parents=True)
        (folder / name).write_text(_star_text(counts))
        (folder / "logs" / f"{name}.parcel").write_bytes(_parcel_state(name))
        (folder / "annotations.txt").write_text(
            "id\tentity_type\tentity_id\tcategory\tclassification\tnotes\n"
            f"{uuid.uuid5(uuid.NAMESPACE_OID, sample)}\tcase\t{file_id}\tItem flagged DNU"
            "\tNotification\tRNA degraded\n"
        )
        rows.append(
            [
                file_id,
                name,
                "Transcriptome Profiling",
                "Gene Expression Quantification",
                "TCGA-COAD",
                case,
                sample,
                kind,
            ]
        )
    sheet = pd.DataFrame(
        rows,
        columns=[
            "File ID",
            "File Name",
            "Data Category",
            "Data Type",
            "Project ID",
            "Case ID",
            "Sample ID",
            "Sample Type",
        ],
    )
    sheet.to_csv(tmp_path / "gdc_sample_sheet.tsv", sep="\t", index=False)
    return root, tmp_path / "gdc_sample_sheet.tsv"


def test_folder_and_sample_sheet(gdc_download):
    root, sheet = gdc_download
    data = load_gdc_star(root, sample_sheet=sheet)  # FPKM-UQ by default, as in the paper
    assert sorted(data.expression.index) == [
        "TCGA-AA-3489-01A",
        "TCGA-AA-3489-11A",
        "TCGA-CM-4743-01A",
    ]
    assert data.expression.columns.tolist() == [g[0] for g in GENES]  # N_ rows dropped
    assert data.expression.loc["TCGA-AA-3489-01A"].tolist() == pytest.approx([2, 0, 60, 8])
    assert data.patient_ids["TCGA-CM-4743-01A"] == "TCGA-CM-4743"
    assert data.genes.loc["ENSG00000167286.10", "gene_name"] == "CD3D"
    assert data.sample_types["TCGA-AA-3489-11A"] == "Solid Tissue Normal"
    assert data.files["TCGA-CM-4743-01A"].endswith("augmented_star_gene_counts.tsv")


def test_gdc_client_layout_is_read_without_its_bookkeeping(gdc_download):
    """logs/*.parcel, parcel temporaries, annotations.txt, the manifest and the dated sample
    sheet lie beside the data; only the STAR files are read."""
    root, sheet = gdc_download
    folder = next(p for p in sorted(root.iterdir()) if p.is_dir())
    (folder / "logs" / ".parcel_k2j4x9").write_bytes(b"\x80\x02}q\x00.")
    dated = root / "gdc_sample_sheet.2024-05-01.tsv"
    dated.write_text(sheet.read_text())
    (root / "gdc_manifest.2024-05-01.txt").write_text("id\tfilename\tmd5\tsize\tstate\n")
    data = load_gdc_star(root, sample_sheet=dated)
    assert len(data.expression) == 3
    assert all(f.endswith(".augmented_star_gene_counts.tsv") for f in data.files)
    assert all(Path(f).parent.parent == root for f in data.files)  # <root>/<file id>/<name>
    # Files renamed by hand (no "star_gene_counts" in the name): still not the logs.
    for p in root.rglob("*.augmented_star_gene_counts.tsv"):
        p.rename(p.with_name(p.name.replace(".rna_seq.augmented_star_gene_counts", "")))
    renamed = load_gdc_star(root)  # samples named by their GDC file id (the folder)
    assert sorted(renamed.expression.index) == sorted(p.parent.name for p in data.files.map(Path))


def test_an_interrupted_download_is_named(gdc_download):
    """gdc-client writes ``<name>.partial`` until a file is complete: say so, not skip it."""
    root, sheet = gdc_download
    star = sorted(root.rglob("*.augmented_star_gene_counts.tsv"))[0]
    star.rename(star.with_name(star.name + ".partial"))
    with pytest.raises(ValueError, match=r"incomplete.*\.tsv\.partial.*gdc-client download"):
        load_gdc_star(root, sample_sheet=sheet)


@pytest.mark.parametrize(
    "value, factor", [("counts", 1.0), ("unstranded", 1.0), ("tpm", 0.5), ("fpkm", 0.1)]
)
def test_value_columns(gdc_download, value, factor):
    root, sheet = gdc_download
    data = load_gdc_star(root, sample_sheet=sheet, value=value, sample_types=["Primary Tumor"])
    assert len(data.expression) == 2  # the normal sample is left out
    assert data.expression.loc["TCGA-CM-4743-01A"].tolist() == pytest.approx(
        [7 * factor, 0, 90 * factor, 55 * factor]
    )


def test_sheets_without_a_sample_type_column(gdc_download):
    """The GDC dictionary deprecated ``sample_type`` for ``tissue_type`` and
    ``tumor_descriptor``: a sheet with those columns instead. TCGA barcodes carry the type."""
    root, sheet = gdc_download
    original = sheet.read_text()
    table = pd.read_csv(sheet, sep="\t")
    table["Tissue Type"] = table.pop("Sample Type").map(
        {"Primary Tumor": "Tumor", "Solid Tissue Normal": "Normal"}
    )
    table["Tumor Descriptor"] = table["Tissue Type"].map(
        {"Tumor": "Primary", "Normal": "Not Applicable"}
    )
    table.to_csv(sheet, sep="\t", index=False)
    data = load_gdc_star(root, sample_sheet=sheet, sample_types=["Primary Tumor"])
    assert sorted(data.expression.index) == ["TCGA-AA-3489-01A", "TCGA-CM-4743-01A"]
    assert data.sample_types.tolist() == ["Primary Tumor", "Primary Tumor"]
    # The barcode's code (characters 14-15) names the same samples, also as one string.
    assert load_gdc_star(root, sample_sheet=sheet, sample_types="01").expression.equals(
        data.expression
    )
    normal = load_gdc_star(root, sample_sheet=sheet, sample_types=["Solid Tissue Normal"])
    assert normal.expression.index.tolist() == ["TCGA-AA-3489-11A"]
    # Without TCGA barcodes there is nothing to read the type from: say what is missing.
    table["Sample ID"] = ["S1", "S2", "S3"]
    table.to_csv(sheet, sep="\t", index=False)
    with pytest.raises(
        ValueError, match=r"no 'Sample Type' column.*samples \['S\d', 'S\d', 'S\d'\]"
    ):
        load_gdc_star(root, sample_sheet=sheet, sample_types=["Primary Tumor"])
    full = sheet.with_name("full_sheet.tsv")
    full.write_text(original)
    with pytest.raises(ValueError, match=r"\['Metastatic'\].*types are \['Primary Tumor', 'Solid"):
        load_gdc_star(root, sample_sheet=full, sample_types="06")


def test_gene_names_log_and_zero_median(gdc_download):
    root, sheet = gdc_download
    data = load_gdc_star(
        root,
        sample_sheet=sheet,
        value="counts",
        gene_column="gene_name",
        log_transform=True,
        drop_zero_median=True,
    )
    assert data.expression.columns.tolist() == ["TSPAN6", "CD3D", "EPCAM"]  # TNMD median 0
    np.testing.assert_allclose(data.expression.loc["TCGA-AA-3489-01A", "CD3D"], np.log10(301))
    assert data.genes.index.tolist() == ["TSPAN6", "CD3D", "EPCAM"]


def _gencode_v36_star(fpkm_uq):
    """A GDC STAR-Counts file (GENCODE v36) with the symbols that name several gene ids: a
    pseudoautosomal gene and its ``_PAR_Y`` copy (which the GDC's GRCh38 reference masks,
    so it counts zero), and multi-copy RNA families such as 5S_rRNA."""
    genes = [
        ("ENSG00000000003.15", "TSPAN6", "protein_coding"),
        ("ENSG00000002586.20", "CD99", "protein_coding"),
        ("ENSG00000002586.20_PAR_Y", "CD99", "protein_coding"),
        ("ENSG00000167286.10", "CD3D", "protein_coding"),
        ("ENSG00000201285.1", "5S_rRNA", "rRNA"),
        ("ENSG00000275215.1", "5S_rRNA", "rRNA"),
        ("ENSG00000277488.1", "5S_rRNA", "rRNA"),
    ]
    lines = [
        "# gene-model: GENCODE v36",
        HEADER,
        "N_unmapped\t\t\t4850100\t4850100\t4850100\t\t\t",
        "N_multimapping\t\t\t8308196\t8308196\t8308196\t\t\t",
        "N_noFeature\t\t\t2173748\t36760327\t37016824\t\t\t",
        "N_ambiguous\t\t\t7782266\t1870982\t1859643\t\t\t",
    ]
    for (gid, sym, kind), v in zip(genes, fpkm_uq):
        count = int(v * 10)
        lines.append(
            f"{gid}\t{sym}\t{kind}\t{count}\t{count // 2}\t{count - count // 2}"
            f"\t{v * 2:.4f}\t{v * 0.8:.4f}\t{v:.4f}"
        )
    return "\n".join(lines) + "\n"


def test_duplicate_gene_symbols_are_aggregated_on_request(tmp_path):
    a, b = tmp_path / "a.rna_seq.augmented_star_gene_counts.tsv", tmp_path / "b.tsv"
    a.write_text(_gencode_v36_star([9.5, 40.0, 0.0, 3.0, 1.0, 0.0, 2.5]))
    b.write_text(_gencode_v36_star([8.0, 12.0, 0.0, 6.0, 0.0, 4.0, 4.0]))
    ids = {a.name: "S1", b.name: "S2"}
    with pytest.raises(ValueError, match=r"\['CD99', '5S_rRNA'\].*duplicates='sum'"):
        load_gdc_star([a, b], sample_ids=ids, gene_column="gene_name")
    summed = load_gdc_star([a, b], sample_ids=ids, gene_column="gene_name", duplicates="sum")
    assert summed.expression.columns.tolist() == ["TSPAN6", "CD99", "CD3D", "5S_rRNA"]
    assert summed.expression.loc["S1"].tolist() == pytest.approx([9.5, 40, 3, 3.5])
    assert summed.expression.loc["S2", "5S_rRNA"] == pytest.approx(8.0)
    assert summed.genes.loc["CD99", "gene_id"] == "ENSG00000002586.20;ENSG00000002586.20_PAR_Y"
    assert summed.genes.loc["5S_rRNA", "gene_type"] == "rRNA"
    assert summed.genes.index.name == "gene_name" and summed.genes.index.is_unique
    expected = {"mean": [40 / 2, 3.5 / 3], "max": [40, 2.5], "first": [40, 1.0]}
    for how, (cd99, rrna) in expected.items():
        data = load_gdc_star([a, b], sample_ids=ids, gene_column="gene_name", duplicates=how)
        assert data.expression.loc["S1", ["CD99", "5S_rRNA"]].tolist() == pytest.approx(
            [cd99, rrna]
        ), how
    first = load_gdc_star([a, b], sample_ids=ids, gene_column="gene_name", duplicates="first")
    assert first.genes.loc["CD99", "gene_id"] == "ENSG00000002586.20"
    # Counts are summed before the log, and the log is of the sum.
    logged = load_gdc_star(
        [a, b],
        sample_ids=ids,
        value="counts",
        gene_column="gene_name",
        duplicates="sum",
        log_transform=True,
    )
    assert logged.expression.loc["S2", "5S_rRNA"] == pytest.approx(np.log10(1 + 0 + 40 + 40))
    with pytest.raises(ValueError, match="duplicates must be one of"):
        load_gdc_star([a], gene_column="gene_name", duplicates="median")


def test_list_of_files_and_ids_without_a_sheet(tmp_path):
    a, b = tmp_path / "a.tsv.gz", tmp_path / "b.tsv"
    with gzip.open(a, "wt") as fh:
        fh.write(_star_text([1, 2, 3, 4]))
    b.write_text(_star_text([5, 6, 7, 8]))
    data = load_gdc_star([a, b], value="counts", sample_ids={"a.tsv.gz": "S1", "b.tsv": "S2"})
    assert data.expression.loc["S2"].tolist() == [5, 6, 7, 8]
    assert data.patient_ids.tolist() == ["S1", "S2"] and data.sample_types is None
    plain = load_gdc_star([a, b], value="counts")
    assert plain.expression.index.tolist() == ["a", "b"]


def test_errors_name_the_file(gdc_download, tmp_path):
    root, sheet = gdc_download
    odd = tmp_path / "odd.tsv"
    odd.write_text("gene\tcount\nA\t1\n")
    with pytest.raises(ValueError, match=r"odd\.tsv.*not a GDC STAR counts file"):
        load_gdc_star([odd])
    short = tmp_path / "short.tsv"
    short.write_text(_star_text([1, 2, 3], genes=GENES[:3]))
    full = tmp_path / "full.tsv"
    full.write_text(_star_text([1, 2, 3, 4]))
    with pytest.raises(ValueError, match=r"short\.tsv.*1 missing.*ENSG00000119888"):
        load_gdc_star([full, short])
    with pytest.raises(ValueError, match="more than one file"):
        load_gdc_star([full, short], sample_ids={"full.tsv": "X", "short.tsv": "X"})
    with pytest.raises(ValueError, match=r"full\.tsv' is not in the sample sheet"):
        load_gdc_star([full], sample_sheet=sheet)
    with pytest.raises(ValueError, match="value must be one of"):
        load_gdc_star(root, value="rpkm")
    dup = tmp_path / "dup.tsv"
    dup.write_text(_star_text([1, 2], genes=[GENES[0], (GENES[1][0], "TSPAN6", "lncRNA")]))
    with pytest.raises(ValueError, match="name several gene ids"):
        load_gdc_star([dup], gene_column="gene_name")
    broken = tmp_path / "broken.tsv"
    broken.write_text(_star_text([1, 2, 3, 4]).replace("\t0.5000\t", "\tNA\t", 1))
    with pytest.raises(ValueError, match=r"Non-numeric or empty 'tpm_unstranded'.*broken\.tsv"):
        load_gdc_star([broken], value="tpm")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_gdc_star(tmp_path / "nowhere")


def test_damaged_star_files_and_sheets_are_named(gdc_download, tmp_path):
    """A truncated .tsv.gz, a plain file named .gz, a binary file, an empty file and a
    truncated sample sheet each give one ValueError naming the file."""
    root, sheet = gdc_download
    text = _star_text([1, 2, 3, 4]).encode()
    packed = gzip.compress(text)
    cases = {
        "truncated.tsv.gz": (packed[: len(packed) // 2], "corrupt or truncated gzip"),
        "plain.tsv.gz": (text, "named .gz but is not gzip-compressed"),
        "binary.tsv": (bytes(range(128, 256)) * 4, "not UTF-8 text"),
        "empty.tsv": (b"", "is empty"),
    }
    for name, (data, what) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=rf"'{tmp_path / name}' .*{what}"):
            load_gdc_star([tmp_path / name])
    cut = tmp_path / "gdc_sample_sheet.tsv.gz"
    cut.write_bytes(gzip.compress(sheet.read_bytes())[:40])
    with pytest.raises(ValueError, match=rf"'{cut}' is a corrupt or truncated gzip"):
        load_gdc_star(root, sample_sheet=cut)
