import pandas as pd
import pytest

from he2rna_sklearn.cli import build_parser, main


def test_help_lists_commands_with_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("featurize", "fit", "predict", "evaluate", "heatmap", "demo"):
        assert command in out
    assert "examples:" in out


@pytest.mark.parametrize("command", ["featurize", "fit", "predict", "evaluate", "heatmap", "demo"])
def test_each_subcommand_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "example" in out and f"he2rna {command}" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


@pytest.fixture(scope="module")
def workspace(tiny_cohort, tmp_path_factory):
    """A manifest and a genes x samples expression table for the tiny synthetic cohort."""
    root = tmp_path_factory.mktemp("cli")
    manifest = pd.DataFrame(
        {
            "slide_path": tiny_cohort.slide_paths,
            "sample_id": tiny_cohort.slide_ids,
            "patient_id": tiny_cohort.patient_ids,
        }
    )
    manifest.to_csv(root / "slides.csv", index=False)
    expr = tiny_cohort.expression.T.rename_axis("symbol")
    expr.to_csv(root / "expression.csv.gz")
    return root


def _ok(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_round_trip(workspace, capsys):
    w = str(workspace)
    feats = f"{w}/features"
    featurize = [
        "featurize",
        "--manifest",
        f"{w}/slides.csv",
        "--out",
        feats,
        "--backbone",
        "resnet18",
        "--weights",
        "none",
        "--mpp",
        "1.0",
        "--tile-size",
        "64",
        "--quiet",
    ]
    out = _ok(featurize, capsys)
    assert "Backbone resnet18, weights random-init(seed=0)" in out
    index = pd.read_csv(f"{feats}/index.csv")
    assert len(index) == len(pd.read_csv(f"{w}/slides.csv")) and (index["n_tiles"] > 0).all()
    common = [
        "--features",
        feats,
        "--expression",
        f"{w}/expression.csv.gz",
        "--genes",
        "CD3E,EPCAM,COL1A1,NOISE01",
        "--hidden",
        "16",
        "--epochs",
        "5",
        "--validation-fraction",
        "0",
        "--quiet",
    ]
    _ok(["fit", *common, "--out", f"{w}/model.joblib"], capsys)
    _ok(
        ["predict", "--model", f"{w}/model.joblib", "--features", feats, "--out", f"{w}/pred.csv"],
        capsys,
    )
    pred = pd.read_csv(f"{w}/pred.csv", index_col=0)
    assert list(pred.columns) == ["CD3E", "EPCAM", "COL1A1", "NOISE01"]
    assert list(pred.index) == list(index["sample_id"])
    _ok(["evaluate", *common, "--folds", "3", "--out", f"{w}/genes.csv"], capsys)
    report = pd.read_csv(f"{w}/genes.csv", index_col=0)
    assert {"r", "p", "p_holm", "p_bh"} <= set(report.columns) and len(report) == 4
    assert len(pd.read_csv(f"{w}/genes_per_fold.csv")) == 4 * 3
    slide = index["sample_id"].iloc[0]
    _ok(
        [
            "heatmap",
            "--model",
            f"{w}/model.joblib",
            "--features",
            feats,
            "--slide",
            slide,
            "--gene",
            "CD3E",
            "--out",
            f"{w}/cd3e.png",
        ],
        capsys,
    )
    assert (workspace / "cd3e.png").stat().st_size > 5000
    # a rerun of featurize reuses every feature file
    before = {p.name: p.stat().st_mtime_ns for p in (workspace / "features").glob("*.h5")}
    _ok(featurize, capsys)
    after = {p.name: p.stat().st_mtime_ns for p in (workspace / "features").glob("*.h5")}
    assert before == after


def _error(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_input_errors_are_one_line(workspace, tmp_path, capsys):
    w = str(workspace)
    err = _error(
        ["featurize", "--manifest", f"{tmp_path}/none.csv", "--out", str(tmp_path)], capsys
    )
    assert "Manifest not found" in err
    slides = pd.read_csv(f"{w}/slides.csv")
    pd.concat([slides, slides.iloc[:1]]).to_csv(tmp_path / "dup.csv", index=False)
    assert "listed more than once" in _error(
        ["featurize", "--manifest", f"{tmp_path}/dup.csv", "--out", str(tmp_path)], capsys
    )
    slides.assign(slide_path="missing.svs").iloc[:1].to_csv(tmp_path / "miss.csv", index=False)
    assert "Slide file not found" in _error(
        ["featurize", "--manifest", f"{tmp_path}/miss.csv", "--out", str(tmp_path)], capsys
    )
    assert "Feature index not found" in _error(
        [
            "fit",
            "--features",
            str(tmp_path),
            "--expression",
            f"{w}/expression.csv.gz",
            "--out",
            f"{tmp_path}/m.joblib",
        ],
        capsys,
    )
    assert "Model file not found" in _error(
        ["predict", "--model", f"{tmp_path}/m.joblib", "--features", w, "--out", "p.csv"], capsys
    )


def test_unmatched_sample_ids(workspace, tmp_path, capsys):
    w = str(workspace)
    feats = f"{w}/features"
    if not (workspace / "features" / "index.csv").exists():
        pytest.skip("needs the round trip's features")
    expr = pd.read_csv(f"{w}/expression.csv.gz", index_col=0)
    expr.iloc[:, 1:].to_csv(tmp_path / "fewer.csv")
    err = _error(
        [
            "fit",
            "--features",
            feats,
            "--expression",
            f"{tmp_path}/fewer.csv",
            "--out",
            f"{tmp_path}/m.joblib",
        ],
        capsys,
    )
    assert "have no expression" in err and "--match tcga-sample" in err


def test_small_demo_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--n-patients", "12", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "composition-driven genes: mean r" in out and "ROC AUC" in out
    assert "weights: random-init(seed=0)" in out
    assert (tmp_path / "heatmap_CD3E.png").stat().st_size > 10_000
    assert (tmp_path / "gene_correlations.csv").exists()
    n_slides = len(list((tmp_path / "slides").glob("*.tiff")))
    assert len(list((tmp_path / "features").glob("*.h5"))) == n_slides


def test_demo_error_is_one_line(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--n-patients", "3", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("he2rna demo: error:") and "Traceback" not in err


def test_parser_defaults():
    args = build_parser().parse_args(["featurize", "a.svs", "--out", "f"])
    assert args.backbone == "resnet50" and args.weights == "imagenet" and args.mpp is None


def test_index_outside_features_then_fit_and_predict(tmp_path, capsys):
    """TRIDENT-style files plus a manifest: `he2rna index`, then fit and predict on them."""
    import h5py
    import numpy as np

    folder = tmp_path / "trident" / "features_uni_v1"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"TCGA-AA-{i:04d}-01Z-00-DX1" for i in range(8)]
    for name in names:
        with h5py.File(folder / f"{name}.h5", "w") as fh:
            fh["features"] = rng.normal(size=(20, 8)).astype(np.float32)
            fh["coords"] = np.column_stack([np.arange(20) * 512, np.zeros(20, int)])
            fh["coords"].attrs.update({"patch_size": 256, "patch_size_level0": 512})
    pd.DataFrame({"slide_path": [f"/elsewhere/{n}.svs" for n in names]}).to_csv(
        tmp_path / "slides.csv", index=False
    )
    expr = pd.DataFrame(
        rng.gamma(2.0, size=(8, 3)), index=names, columns=["CD3E", "EPCAM", "MKI67"]
    )
    expr.rename_axis("sample_id").to_csv(tmp_path / "expr.csv")

    out = _ok(
        ["index", "--features", str(folder), "--manifest", str(tmp_path / "slides.csv")],
        capsys,
    )
    assert "Indexed 8 slides (8 patients, 160 tiles of 8 features)" in out
    assert (folder / "index.csv").is_file()
    _ok(
        [
            "fit",
            "--features",
            str(folder),
            "--expression",
            str(tmp_path / "expr.csv"),
            "--epochs",
            "2",
            "--validation-fraction",
            "0",
            "--out",
            str(tmp_path / "m.joblib"),
            "--quiet",
        ],
        capsys,
    )
    _ok(
        [
            "predict",
            "--model",
            str(tmp_path / "m.joblib"),
            "--features",
            str(folder),
            "--out",
            str(tmp_path / "pred.csv"),
            "--quiet",
        ],
        capsys,
    )
    assert pd.read_csv(tmp_path / "pred.csv", index_col=0).shape == (8, 3)


def test_index_errors_are_one_line(tmp_path, capsys):
    assert main(["index", "--features", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("he2rna index: error:") and "nowhere" in err and len(err.splitlines()) == 1
    )


def test_index_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["index", "--help"])
    out = capsys.readouterr().out
    assert "he2rna index --features" in out and "manifest" in out
