"""Manifests: the one reader of the CSV files that list slides."""

import pytest


def test_read_manifest_of_slide_files(tmp_path):
    from he2rna_sklearn.features import read_manifest

    slides = [tmp_path / "s1.svs", tmp_path / "s2.svs"]
    for path in slides:
        path.write_bytes(b"slide")
    manifest = read_manifest([str(p) for p in slides])
    assert manifest["sample_id"].tolist() == ["s1", "s2"]
    with pytest.raises(ValueError, match="listed more than once in the slide list"):
        read_manifest([slides[0], slides[0]])
    with pytest.raises(FileNotFoundError, match="Slide file not found"):
        read_manifest([tmp_path / "nowhere.svs"])


def test_ids_with_spaces_or_empty_are_errors_naming_the_row(tmp_path):
    import pandas as pd

    from he2rna_sklearn.features import read_manifest

    for name in ("s1", "s2", "s3"):
        (tmp_path / f"{name}.svs").write_bytes(b"slide")
    table = pd.DataFrame(
        {
            "slide_path": ["s1.svs", "s2.svs", "s3.svs"],
            "sample_id": ["S1", " S2", "S3"],
            "patient_id": ["P1", "P2", ""],
        }
    )
    table.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ValueError, match=r"sample_id ' S2' in manifest '.*m\.csv' \(row 2\)"):
        read_manifest(tmp_path / "m.csv")
    table.assign(sample_id=["S1", "", "S3"]).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ValueError, match=r"empty sample_id in rows \[2\]"):
        read_manifest(tmp_path / "m.csv")
    table.assign(slide_path=["s1.svs", "", "s3.svs"]).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ValueError, match=r"empty slide_path in rows \[2\]"):
        read_manifest(tmp_path / "m.csv")
    # an empty patient id is the sample's default patient, not one patient "" for all
    table.assign(sample_id=["S1", "S2", "TCGA-AA-0001-01"]).to_csv(tmp_path / "m.csv", index=False)
    assert read_manifest(tmp_path / "m.csv")["patient_id"].tolist() == ["P1", "P2", "TCGA-AA-0001"]
