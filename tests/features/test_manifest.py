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
