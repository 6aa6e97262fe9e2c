import pytest

from he2rna_sklearn.cli import main


def test_help_lists_demo_with_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "examples:" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_demo_error_is_one_line(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--n-patients", "3", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("he2rna demo: error:") and "Traceback" not in err


def test_small_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--n-patients", "12", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "composition-driven genes: mean r" in out and "ROC AUC" in out
    assert "weights: random-init(seed=0)" in out
    assert (tmp_path / "heatmap_CD3E.png").stat().st_size > 10_000
    assert (tmp_path / "gene_correlations.csv").exists()
    assert len(list((tmp_path / "features").glob("*.h5"))) == len(
        list((tmp_path / "slides").glob("*.tiff"))
    )
