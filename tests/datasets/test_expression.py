import gzip

import numpy as np
import pandas as pd
import pytest

from he2rna_sklearn.datasets import load_expression, tcga_patient_id

from ..conftest import DATA, SHARED

SUBSET = DATA / "tcga-coadread-subset.csv.gz"
FULL = SHARED / "expression" / "tcga-coadread-rsem-counts.csv.gz"


def test_tcga_genes_x_samples_table():
    data = load_expression(SUBSET)
    expr = data.expression
    assert expr.shape == (92, 300)
    assert expr.index[0] == "TCGA-4N-A93T-01A-11R" and expr.columns[0] == "A1BG"
    assert data.patient_ids.iloc[0] == "TCGA-4N-A93T"
    assert data.patient_ids.str.len().eq(12).all()
    assert list(data.genes.columns) == ["entrez", "symbol"]
    raw = pd.read_csv(SUBSET)
    assert expr.loc["TCGA-4T-AA8H-01A-11R", "A1CF"] == raw.loc[1, "TCGA-4T-AA8H-01A-11R"]


def test_log_transform_and_zero_median_filter():
    raw = load_expression(SUBSET).expression
    data = load_expression(SUBSET, log_transform=True, drop_zero_median=True)
    kept = raw.columns[raw.median() != 0]
    assert list(data.expression.columns) == list(kept)
    np.testing.assert_allclose(data.expression.to_numpy(), np.log10(1 + raw[kept].to_numpy()))


@pytest.mark.skipif(not FULL.exists(), reason="../shared data not beside this checkout")
def test_full_shared_table():
    data = load_expression(FULL, gene_column="entrez", log_transform=True)
    assert data.expression.shape == (92, 17045)
    assert data.patient_ids.nunique() == 92


def test_samples_x_genes_tsv_and_custom_patients(tmp_path):
    path = tmp_path / "expr.tsv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("sample\tGENE1\tGENE2\nP1-a\t1\t2\nP1-b\t3\t4\nP2-a\t5\t6\n")
    data = load_expression(path, patient_id=lambda s: s.split("-")[0])  # "sample" header
    assert data.expression.shape == (3, 2)
    assert data.patient_ids.tolist() == ["P1", "P1", "P2"]
    assert data.genes is None


def _write(tmp_path, text):
    path = tmp_path / "e.csv"
    path.write_text(text)
    return path


def test_duplicated_samples_named(tmp_path):
    path = _write(tmp_path, "gene,TCGA-AA-0001-01A,TCGA-AA-0001-01A\nG1,1,2\nG2,3,4\n")
    with pytest.raises(ValueError, match="Duplicated sample ids.*TCGA-AA-0001-01A"):
        load_expression(path)


def test_duplicated_genes_named(tmp_path):
    path = _write(tmp_path, "gene,TCGA-AA-0001-01A,TCGA-AA-0002-01A\nG1,1,2\nG1,3,4\n")
    with pytest.raises(ValueError, match="Duplicated gene ids.*G1"):
        load_expression(path)


def test_non_numeric_cells_named(tmp_path):
    path = _write(tmp_path, "gene,TCGA-AA-0001-01A,TCGA-AA-0002-01A\nG1,1,2\nG2,3,abc\n")
    with pytest.raises(ValueError, match=r"TCGA-AA-0002-01A/G2='abc'"):
        load_expression(path)


def test_missing_values_named(tmp_path):
    path = _write(tmp_path, "gene,TCGA-AA-0001-01A,TCGA-AA-0002-01A\nG1,1,\nG2,3,NA\n")
    with pytest.raises(
        ValueError, match=r"samples \['TCGA-AA-0002-01A'\] and genes \['G1', 'G2'\]"
    ):
        load_expression(path)


def test_negative_values_refused_for_log(tmp_path):
    path = _write(tmp_path, "gene,TCGA-AA-0001-01A,TCGA-AA-0002-01A\nG1,1,-2\nG2,3,4\n")
    with pytest.raises(ValueError, match="non-negative.*G1"):
        load_expression(path, log_transform=True)


def test_tcga_patient_id():
    assert tcga_patient_id("tcga-aa-3489-01a") == "TCGA-AA-3489"
    with pytest.raises(ValueError, match="barcode"):
        tcga_patient_id("SYN-0001")


def test_gdc_layout_uses_gene_names(tmp_path):
    path = tmp_path / "gdc.tsv"
    path.write_text(
        "gene_id\tgene_name\tTCGA-AA-0001-01A-11R\tTCGA-AA-0002-01A-11R\n"
        "ENSG01\tCD3E\t1\t2\nENSG02\tEPCAM\t3\t4\n"
    )
    data = load_expression(path)
    assert list(data.expression.columns) == ["CD3E", "EPCAM"]
    assert data.genes.loc["CD3E", "gene_id"] == "ENSG01"
    assert list(load_expression(path, gene_column="gene_id").expression.columns) == [
        "ENSG01",
        "ENSG02",
    ]


def test_orientation_from_the_expected_sample_ids(tmp_path):
    rng = np.random.default_rng(0)
    samples = [f"S{i:02d}" for i in range(12)]
    table = pd.DataFrame(rng.random((12, 3)), index=samples, columns=["CD3E", "EPCAM", "MKI67"])
    table.to_csv(tmp_path / "expr.csv")  # unnamed index: the header starts with ""
    guessed = load_expression(tmp_path / "expr.csv")
    assert guessed.orient == "genes_x_samples"  # 12 rows > 3 numeric columns: a guess
    data = load_expression(tmp_path / "expr.csv", sample_ids=samples[:5])
    assert data.orient == "samples_x_genes"
    assert data.expression.shape == (12, 3) and list(data.expression.index) == samples
    data = load_expression(tmp_path / "expr.csv", sample_ids=["CD3E"])  # looked up as given
    assert data.orient == "genes_x_samples"


def test_empty_or_folder_expression_table(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv' is empty"):
        load_expression(tmp_path / "empty.csv")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_expression(tmp_path)


def test_primary_tumours_only(tmp_path):
    from he2rna_sklearn.datasets import PRIMARY_TUMOUR, tcga_sample_type

    path = tmp_path / "types.csv"
    path.write_text(
        "gene,TCGA-AA-0001-01A-11R,TCGA-AA-0001-11A-01R,TCGA-AA-0002-06A,TCGA-AA-0003-01B\n"
        "G1,0,5,5,0\nG2,3,0,0,4\n"
    )
    everything = load_expression(path, drop_zero_median=True)
    assert everything.expression.shape == (4, 2)
    data = load_expression(path, sample_types=PRIMARY_TUMOUR, drop_zero_median=True)
    assert list(data.expression.index) == ["TCGA-AA-0001-01A-11R", "TCGA-AA-0003-01B"]
    # medians are taken over the kept samples: G1 is zero in both primary tumours
    assert list(data.expression.columns) == ["G2"]
    assert data.patient_ids.tolist() == ["TCGA-AA-0001", "TCGA-AA-0003"]
    both = load_expression(path, sample_types=["01", "06"])
    assert len(both.expression) == 3
    assert tcga_sample_type("tcga-aa-0001-11a") == "11"
    with pytest.raises(ValueError, match="no TCGA sample type"):
        tcga_sample_type("TCGA-AA-0001")
    with pytest.raises(
        ValueError, match=r"sample type \['02'\]; its types are \['01', '06', '11'\]"
    ):
        load_expression(path, sample_types="02")
    with pytest.raises(ValueError, match="sample_types must be TCGA sample type codes"):
        load_expression(path, sample_types="primary")


def test_sample_types_need_tcga_barcodes(tmp_path):
    path = _write(tmp_path, "gene,TCGA-AA-0001-01A,SYN-0002\nG1,1,2\nG2,3,4\n")
    with pytest.raises(ValueError, match=r"sample_types='01' needs TCGA.*\['SYN-0002'\]"):
        load_expression(path, sample_types="01")
    assert load_expression(path).expression.shape == (2, 2)


def _broken_files(tmp_path):
    """Damaged and mislabeled copies of a real expression table, as users meet them."""
    raw = SUBSET.read_bytes()  # gzip of a real TCGA table
    text = gzip.decompress(raw)
    mid = bytearray(raw)
    mid[-8:] = b"\x00" * 8  # the gzip trailer (CRC-32, size) overwritten
    inner = bytearray(raw)
    inner[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)  # bytes lost inside the stream
    files = {
        "truncated.csv.gz": raw[: len(raw) // 2],  # an interrupted download
        "header-only.csv.gz": raw[:120],
        "bad-crc.csv.gz": bytes(mid),
        "corrupt-inside.csv.gz": bytes(inner),
        "plain-text.csv.gz": text,  # named .gz, never compressed
        "archive.csv.gz": b"PK\x03\x04" + raw[:400],  # a zip archive named .gz
        "random.csv": bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)),
        "binary.csv.gz": gzip.compress(bytes(range(256)) * 8),
        "utf16.csv": text[:2000].decode("ascii").encode("utf-16"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return files


@pytest.mark.parametrize(
    "name, what",
    [
        ("truncated.csv.gz", "corrupt or truncated gzip"),
        ("header-only.csv.gz", "corrupt or truncated gzip"),
        ("bad-crc.csv.gz", "corrupt or truncated gzip"),
        ("corrupt-inside.csv.gz", "(corrupt or truncated gzip|corrupt gzip file does this)"),
        ("plain-text.csv.gz", "named .gz but is not gzip-compressed"),
        ("archive.csv.gz", "named .gz but is a zip archive"),
        ("random.csv", "not UTF-8 text"),
        ("binary.csv.gz", "not UTF-8 text"),
        ("utf16.csv", "not UTF-8 text"),
    ],
)
def test_damaged_or_mislabeled_files_get_one_error_naming_them(tmp_path, name, what):
    _broken_files(tmp_path)
    with pytest.raises(ValueError, match=rf"'{tmp_path / name}' (is|has).*{what}") as info:
        load_expression(tmp_path / name)
    assert "\n" not in str(info.value)


def test_gzip_content_under_another_name_is_read(tmp_path):
    plain = tmp_path / "expression.csv"
    plain.write_bytes(SUBSET.read_bytes())  # gzip-compressed, named .csv
    assert load_expression(plain).expression.equals(load_expression(SUBSET).expression)
