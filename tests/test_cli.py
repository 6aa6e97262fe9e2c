import re

import numpy as np
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


def _featurize_args(manifest, out, *extra):
    return [
        "featurize",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--backbone",
        "resnet18",
        "--weights",
        "none",
        "--mpp",
        "1.0",
        "--tile-size",
        "64",
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def features(workspace):
    """The workspace's slides featurized once (resnet18, random weights)."""
    code = main(_featurize_args(workspace / "slides.csv", workspace / "features"))
    assert code == 0
    return workspace / "features"


def _common(workspace, features):
    return [
        "--features",
        str(features),
        "--expression",
        f"{workspace}/expression.csv.gz",
        "--genes",
        "CD3E,EPCAM,COL1A1,NOISE01",
        "--tile-types",
        "16",
        "--epochs",
        "5",
        "--validation-fraction",
        "0",
        "--quiet",
    ]


@pytest.fixture(scope="module")
def model_file(workspace, features):
    """A model fitted once on the workspace's features."""
    assert main(["fit", *_common(workspace, features), "--out", f"{workspace}/model.skops"]) == 0
    return workspace / "model.skops"


def test_fit_reports_the_tuned_baseline_on_its_validation_slides(workspace, features, capsys):
    args = _common(workspace, features)
    args = [a for a in args if a != "--quiet"]
    args[args.index("--validation-fraction") + 1] = "0.5"
    out = _ok(["fit", *args, "--out", f"{workspace}/validated.skops"], capsys)
    assert "validation mean r" in out
    assert "Tuned linear baseline (" in out and "chosen by inner CV) on the same" in out
    # a verdict only with an interval, never on a difference of noise
    verdict = re.search(
        r"HE2RNA is (better than|worse than|not distinguishable from) the baseline \(95% "
        r"interval of the mean r difference ([+-]\d\.\d{3}) to ([+-]\d\.\d{3})"
        r"(, above 0| contains 0|, below 0)\)",
        out,
    )
    assert verdict, out
    word, low, high, where = verdict.groups()
    low, high = float(low), float(high)
    assert low <= high
    if low > 0:
        assert (word, where) == ("better than", ", above 0")
    elif high < 0:
        assert (word, where) == ("worse than", ", below 0")
    else:
        assert (word, where) == ("not distinguishable from", " contains 0")


def test_round_trip(workspace, features, model_file, capsys):
    w = str(workspace)
    feats = str(features)
    index = pd.read_csv(f"{feats}/index.csv")
    assert len(index) == len(pd.read_csv(f"{w}/slides.csv")) and (index["n_tiles"] > 0).all()
    common = _common(workspace, features)
    _ok(
        ["predict", "--model", f"{w}/model.skops", "--features", feats, "--out", f"{w}/pred.csv"],
        capsys,
    )
    pred = pd.read_csv(f"{w}/pred.csv", index_col=0)
    assert list(pred.columns) == ["CD3E", "EPCAM", "COL1A1", "NOISE01"]
    assert list(pred.index) == list(index["sample_id"])
    out = _ok(["evaluate", *common, "--folds", "3", "--out", f"{w}/genes.csv"], capsys)
    report = pd.read_csv(f"{w}/genes.csv", index_col=0)
    assert {"r", "p", "p_holm", "p_bh"} <= set(report.columns) and len(report) == 4
    assert len(pd.read_csv(f"{w}/genes_per_fold.csv")) == 4 * 3
    # the tuned linear baseline sits beside HE2RNA, on the same folds, with an interval
    table = pd.read_csv(f"{w}/genes_vs_baseline.csv", index_col=0)
    assert list(table.columns) == [
        "HE2RNARegressor",
        "tuned linear baseline",
        "difference",
        "95% CI low",
        "95% CI high",
    ]
    assert "tuned linear baseline" in out and "The baseline chose" in out
    assert "beats the tuned linear baseline" in out or "NOT beat" in out
    slide = index["sample_id"].iloc[0]
    _ok(
        [
            "heatmap",
            "--model",
            f"{w}/model.skops",
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
    before = {p.name: p.stat().st_mtime_ns for p in features.glob("*.h5")}
    out = _ok(_featurize_args(workspace / "slides.csv", features), capsys)
    assert "Backbone resnet18, weights random-init(seed=0)" in out
    after = {p.name: p.stat().st_mtime_ns for p in features.glob("*.h5")}
    assert before == after
    assert not [p for p in workspace.rglob("*.tmp")]


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
            f"{tmp_path}/m.skops",
        ],
        capsys,
    )
    assert "Model file not found" in _error(
        ["predict", "--model", f"{tmp_path}/m.skops", "--features", w, "--out", "p.csv"], capsys
    )


def test_unmatched_sample_ids(workspace, features, tmp_path, capsys):
    w = str(workspace)
    feats = str(features)
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
            f"{tmp_path}/m.skops",
        ],
        capsys,
    )
    assert "have no expression" in err and "--match tcga-sample" in err


def test_small_demo_end_to_end(tmp_path, capsys):
    import shlex

    # seed 4: 4 of the 12 patients are MSI-H (seed 0 has none)
    argv = ["demo", "--out", str(tmp_path), "--n-patients", "12", "--seed", "4", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # HE2RNA beside the tuned linear baseline, in one table, with an interval
    assert "beside the tuned linear baseline" in out and "ROC AUC" in out
    assert "composition genes: mean r" in out and "genes significant after Holm" in out
    assert "beats the baseline" in out or "does NOT beat the baseline" in out
    assert "interval of the difference" in out and "The baseline chose" in out
    assert "MSI per patient, embedding" in out and "interval of the difference" in out
    assert "weights: random-init(seed=4)" in out
    assert (tmp_path / "heatmap_CD3E.png").stat().st_size > 10_000
    assert (tmp_path / "gene_correlations.csv").exists()
    n_slides = len(list((tmp_path / "slides").glob("*.tiff")))
    assert len(list((tmp_path / "features").glob("*.h5"))) == n_slides
    # the demo's folder is a starting point for the command line: it prints the next
    # commands, and they run as printed (training shortened with --epochs, --folds)
    index = pd.read_csv(tmp_path / "features" / "index.csv")
    assert len(index) == n_slides and (index["n_tiles"] > 0).all()
    assert len(pd.read_csv(tmp_path / "slides.csv")) == n_slides
    commands = [line.strip() for line in out.splitlines() if line.startswith("  he2rna ")]
    assert [c.split()[1] for c in commands] == ["fit", "predict", "heatmap", "evaluate"]
    for command in commands:
        argv = shlex.split(command)[1:]
        if argv[0] in ("fit", "evaluate"):
            argv += ["--epochs", "2", "--quiet"] + (
                ["--folds", "2"] if argv[0] == "evaluate" else []
            )
        assert main(argv) == 0, capsys.readouterr().err
    pred = pd.read_csv(tmp_path / "predictions.csv", index_col=0)
    assert list(pred.index) == list(index["sample_id"]) and "CD3E" in pred.columns
    assert (tmp_path / "heatmap_CD3E_cli.png").exists() and (tmp_path / "genes.csv").exists()


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
            str(tmp_path / "m.skops"),
            "--quiet",
        ],
        capsys,
    )
    _ok(
        [
            "predict",
            "--model",
            str(tmp_path / "m.skops"),
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


# -- issue 13: no silent wrong results, one-line errors naming files and options ----------
def _usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_directory_given_as_a_slide(tmp_path, capsys):
    folder = tmp_path / "a-folder.svs"
    folder.mkdir()
    assert "is a directory" in _error(["featurize", str(folder), "--out", str(tmp_path)], capsys)
    pd.DataFrame({"slide_path": [str(folder)]}).to_csv(tmp_path / "dir.csv", index=False)
    err = _error(["featurize", "--manifest", f"{tmp_path}/dir.csv", "--out", str(tmp_path)], capsys)
    assert "is a directory" in err


def test_empty_manifest(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    err = _error(["featurize", "--manifest", f"{tmp_path}/empty.csv", "--out", "f"], capsys)
    assert "Manifest '" in err and "empty.csv' is empty (0 bytes)" in err


def test_header_only_manifest(tmp_path, capsys):
    (tmp_path / "header.csv").write_text("slide_path,sample_id\n")
    err = _error(["featurize", "--manifest", f"{tmp_path}/header.csv", "--out", "f"], capsys)
    assert "header.csv' lists no slides" in err


def test_empty_expression_table(features, tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    expr = ["--features", str(features), "--expression", f"{tmp_path}/empty.csv"]
    err = _error(["fit", *expr, "--out", f"{tmp_path}/m.skops"], capsys)
    assert "Expression table" in err and "empty.csv' is empty" in err


def test_jobs_zero(capsys):
    assert "--jobs" in _usage_error(["featurize", "a.svs", "--out", "f", "--jobs", "0"], capsys)
    evaluate = ["evaluate", "--features", "f", "--expression", "e", "--out", "g.csv"]
    assert "--jobs" in _usage_error([*evaluate, "--jobs", "0"], capsys)


def test_unknown_device(workspace, tmp_path, capsys):
    args = _featurize_args(workspace / "slides.csv", tmp_path / "f", "--device", "tpu9")
    err = _error(args, capsys)
    assert "--device 'tpu9' is not a device" in err and "device=" not in err


def test_parameter_errors_name_the_option(workspace, tmp_path, capsys):
    err = _error(_featurize_args(workspace / "slides.csv", tmp_path, "--tile-size", "4"), capsys)
    assert err.split("error: ")[1].startswith("--tile-size must be an int in the range [8")


def test_bad_weights_files(workspace, tmp_path, capsys):
    import torch
    from torchvision.models import resnet18

    slides, out = workspace / "slides.csv", tmp_path / "f"
    text = tmp_path / "weights.pth"
    text.write_text("not a checkpoint\n")
    err = _error(_featurize_args(slides, out, "--weights", str(text)), capsys)
    assert "weights.pth': not a PyTorch checkpoint" in err and "weights_only" not in err
    state = resnet18().state_dict()
    state["conv1.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(state, tmp_path / "shapes.pth")
    err = _error(_featurize_args(slides, out, "--weights", str(tmp_path / "shapes.pth")), capsys)
    assert "shapes.pth' do not fit backbone 'resnet18'" in err and "conv1.weight" in err


def test_python_parameters_are_named_as_options(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    img = np.clip(np.array([170, 80, 140]) + rng.normal(0, 15, (300, 300, 3)), 0, 255)
    Image.fromarray(img.astype(np.uint8)).save(tmp_path / "no-mpp.png")
    argv = ["featurize", str(tmp_path / "no-mpp.png"), "--out", str(tmp_path), "--quiet"]
    err = _error([*argv, "--backbone", "resnet18", "--weights", "none"], capsys)
    assert "--slide-mpp <µm per pixel>" in err and "slide_mpp" not in err
    err = _error([*argv, "--backbone", "resnet18", "--weights", "imagenet"], capsys)
    if "could not be downloaded" in err:  # offline: the message names the CLI value
        assert "Only --weights none gives random weights" in err


def test_outputs_are_checked_before_any_work(workspace, features, tmp_path, capsys, monkeypatch):
    from he2rna_sklearn.cli import _commands

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(_commands, "_load_training", no_work)
    common = _common(workspace, features)
    (tmp_path / "out.skops").mkdir()
    err = _error(["fit", *common, "--out", str(tmp_path / "out.skops")], capsys)
    assert "--out" in err and "is a directory" in err
    (tmp_path / "file").write_text("x")
    err = _error(["evaluate", *common, "--out", str(tmp_path / "file" / "genes.csv")], capsys)
    assert "--out" in err and "is a file, not a folder" in err
    err = _error(["evaluate", *common, "--out", "/proc/genes.csv"], capsys)
    assert "cannot write in '/proc'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out.skops"]


def test_samples_x_genes_table_from_to_csv_is_not_read_transposed(
    workspace, features, tmp_path, capsys
):
    expr = pd.read_csv(f"{workspace}/expression.csv.gz", index_col=0).T  # samples x genes
    expr = expr[["CD3E", "EPCAM"]]  # fewer genes than samples: the layout heuristics fail
    expr.rename_axis(None).to_csv(tmp_path / "expr.csv")  # unnamed index, as to_csv writes
    args = ["--features", str(features), "--expression", str(tmp_path / "expr.csv")]
    fit = ["fit", *args, "--tile-types", "4", "--epochs", "1", "--quiet"]
    _ok([*fit, "--out", str(tmp_path / "m.skops")], capsys)
    # when no sample matches either way, the error says how the table was read
    expr.rename(index=lambda s: "x" + s).rename_axis(None).to_csv(tmp_path / "other.csv")
    args[3] = str(tmp_path / "other.csv")
    err = _error(["fit", *args, "--out", str(tmp_path / "m.skops")], capsys)
    assert "was read as genes x samples" in err and "--orient samples_x_genes" in err


def test_featurize_adds_to_an_existing_index(workspace, tmp_path, capsys):
    slides = pd.read_csv(workspace / "slides.csv")
    slides.iloc[:2].to_csv(tmp_path / "first.csv", index=False)
    slides.iloc[2:3].to_csv(tmp_path / "second.csv", index=False)
    out = tmp_path / "features"
    _ok(_featurize_args(tmp_path / "first.csv", out), capsys)
    text = _ok(_featurize_args(tmp_path / "second.csv", out), capsys)
    assert "2 of the 2 slides already in" in text
    index = pd.read_csv(out / "index.csv")
    assert list(index["sample_id"]) == list(slides["sample_id"].iloc[:3])
    # a run with features of another kind is refused instead of mixed into the index
    err = _error(_featurize_args(tmp_path / "second.csv", out, "--tile-size", "32"), capsys)
    assert "cannot share one index" in err
    assert list(pd.read_csv(out / "index.csv")["sample_id"]) == list(index["sample_id"])


def test_keep_pen_marks_reaches_the_featurizer(pen_slide, tmp_path, capsys):
    """--keep-pen-marks sets exclude_pen_marks=False: the marker stroke on the glass of
    the slide is tiled too, and recorded in the feature files."""
    from he2rna_sklearn.features import read_bag

    path = pen_slide[0]
    pd.DataFrame({"slide_path": [path]}).to_csv(tmp_path / "pen.csv", index=False)
    runs = {}
    for name, extra in (("default", ()), ("kept", ("--keep-pen-marks",))):
        _ok(_featurize_args(tmp_path / "pen.csv", tmp_path / name, *extra), capsys)
        runs[name] = pd.read_csv(tmp_path / name / "index.csv").iloc[0]
    assert (runs["default"]["n_tiles"], runs["kept"]["n_tiles"]) == (6, 14)
    bag = read_bag(tmp_path / "kept" / runs["kept"]["feature_file"])
    assert bag.meta["tissue_mask"] == "auto:saturation-otsu"


def test_a_slide_without_tissue_does_not_block_predict(
    workspace, features, model_file, tmp_path, capsys
):
    import shutil

    from he2rna_sklearn.datasets import write_pyramidal_tiff

    feats = tmp_path / "features"
    shutil.copytree(features, feats)
    blank = write_pyramidal_tiff(
        tmp_path / "BLANK-01.tiff", np.full((600, 600, 3), 242, dtype=np.uint8), 0.5
    )
    pd.DataFrame({"slide_path": [blank]}).to_csv(tmp_path / "blank.csv", index=False)
    main(_featurize_args(tmp_path / "blank.csv", feats))
    err = capsys.readouterr().err
    assert "warning: No tissue tiles found" in err and "--min-tissue-fraction" in err
    w = str(workspace)
    predict = ["predict", "--model", str(model_file), "--features", str(feats)]
    code = main([*predict, "--out", f"{w}/p.csv"])
    captured = capsys.readouterr()
    assert code == 0 and "no tissue tiles" in captured.err and "BLANK-01" in captured.err
    pred = pd.read_csv(f"{w}/p.csv", index_col=0)
    assert "BLANK-01" not in pred.index and len(pred) == len(pd.read_csv(features / "index.csv"))


def test_a_swapped_or_altered_feature_file_is_refused(
    workspace, features, model_file, tmp_path, capsys
):
    import shutil

    import h5py

    feats = tmp_path / "features"
    shutil.copytree(features, feats)
    index = pd.read_csv(feats / "index.csv")
    a, b = (feats / f for f in index["feature_file"].iloc[:2])
    shutil.copy(b, a)  # slide b's features under slide a's name
    predict = ["predict", "--model", str(model_file), "--features", str(feats)]
    common = [*_common(workspace, feats), "--out", str(tmp_path / "m.skops")]
    err = _error(["fit", *common], capsys)
    assert f"holds slide '{index['sample_id'].iloc[1]}'" in err
    shutil.copy(features / index["feature_file"].iloc[0], a)
    with h5py.File(b, "r+") as fh:
        fh["features"][0, :4] = 1.0
    err = _error(["fit", *common], capsys)
    assert b.name in err and "checksum" in err
    assert not (tmp_path / "m.skops").exists()
    err = _error([*predict, "--out", str(tmp_path / "p.csv")], capsys)
    assert "checksum" in err


def test_fit_routes_groups_under_metadata_routing(workspace, features, tmp_path, capsys):
    import sklearn

    with sklearn.config_context(enable_metadata_routing=True):
        _ok(["fit", *_common(workspace, features), "--out", str(tmp_path / "m.skops")], capsys)


def test_cli_defaults_come_from_the_estimators():
    from he2rna_sklearn import HE2RNARegressor, SlideFeaturizer

    f = SlideFeaturizer().get_params()
    args = build_parser().parse_args(["featurize", "a.svs", "--out", "f"])
    for param in [
        "backbone",
        "weights",
        "tile_size",
        "max_tiles",
        "min_tissue_fraction",
        "batch_size",
        "num_workers",
        "n_jobs",
        "device",
        "precision",
        "on_error",
        "exclude_pen_marks",
    ]:
        assert getattr(args, param) == f[param], param
    r = HE2RNARegressor().get_params()
    args = build_parser().parse_args(["fit", "--features", "f", "--expression", "e", "--out", "m"])
    assert tuple(args.hidden_layer_sizes) == tuple(r["hidden_layer_sizes"])
    assert (args.max_epochs, args.lr, args.patience) == (r["max_epochs"], r["lr"], r["patience"])
    assert args.validation_fraction == r["validation_fraction"]


def test_demo_defaults_and_help_come_from_their_sources(capsys):
    import inspect

    from he2rna_sklearn._demo import run_demo
    from he2rna_sklearn.features import DEFAULT_MPP

    demo = inspect.signature(run_demo).parameters
    args = build_parser().parse_args(["demo"])
    for param in ["out_dir", "n_patients", "backbone", "weights", "random_state"]:
        assert getattr(args, param) == demo[param].default, param
    with pytest.raises(SystemExit):
        main(["featurize", "--help"])
    assert f"(default: {DEFAULT_MPP})" in " ".join(capsys.readouterr().out.split())


def test_the_option_list_derives_from_the_parameters():
    """Options are stored under the parameter they set: the options that error messages
    name are found from the parser, none is kept by hand."""
    from he2rna_sklearn import HE2RNARegressor, SlideFeaturizer
    from he2rna_sklearn.cli._parser import parameter_options

    parsers = build_parser()._subparsers._group_actions[0].choices
    featurize = parameter_options(parsers["featurize"])
    assert featurize["num_workers"] == "--workers" and featurize["n_jobs"] == "--jobs"
    assert set(featurize) <= set(SlideFeaturizer().get_params())
    fit = parameter_options(parsers["fit"])
    assert fit["max_epochs"] == "--epochs" and fit["hidden_layer_sizes"] == "--hidden"
    expression = {
        "log_transform", "drop_zero_median", "orient", "slide_mpp", "n_clusters", "cluster_on"
    }  # fmt: skip
    assert set(fit) - expression <= set(HE2RNARegressor().get_params())
    assert parameter_options(parsers["demo"])["n_patients"] == "--n-patients"


def test_a_crafted_model_file_never_runs(workspace, features, tmp_path, capsys):
    import os
    import pickle

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    feats = ["--features", str(features)]
    for name in ("evil.joblib", "evil.skops"):
        (tmp_path / name).write_bytes(pickle.dumps({"model": RunsCode()}))
        err = _error(["predict", "--model", str(tmp_path / name), *feats, "--out", "p.csv"], capsys)
        assert f"{name}' is not a model saved by he2rna-sklearn" in err and "pickle" in err
        heatmap = ["heatmap", "--model", str(tmp_path / name), *feats, "--slide", "x"]
        assert "pickle" in _error([*heatmap, "--gene", "CD3E", "--out", "h.png"], capsys)
    assert not (tmp_path / "ran").exists()


def test_a_file_that_is_not_a_model(features, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("183\n")
    args = ["--model", str(tmp_path / "notes.txt"), "--features", str(features), "--out", "p.csv"]
    err = _error(["predict", *args], capsys)
    assert "notes.txt' is not a model saved by he2rna-sklearn (not a skops file)" in err


def test_heatmap_of_features_in_um_reads_the_slides_resolution(tiny_cohort, tmp_path, capsys):
    """STAMP files keep µm coordinates: the heatmap converts them with the slide's own
    µm/px (or --slide-mpp), and says what to pass when it cannot."""
    from pathlib import Path

    import h5py

    from he2rna_sklearn.slides import SlideReader

    folder = tmp_path / "stamp"
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = tiny_cohort.slide_paths[:6]
    names = [Path(p).stem for p in paths]
    grid = np.array([(x, y) for y in range(3) for x in range(4)]) * 200
    for path, name in zip(paths, names):
        with SlideReader(path) as reader:
            mpp = reader.mpp
        with h5py.File(folder / f"{name}.h5", "w") as fh:
            fh["feats"] = rng.normal(size=(len(grid), 8)).astype(np.float32)
            fh["coords"] = grid * mpp
            fh.attrs.update({"unit": "um", "tile_size_um": 200 * mpp})
    pd.DataFrame({"slide_path": paths}).to_csv(tmp_path / "slides.csv", index=False)
    expr = pd.DataFrame(rng.gamma(2.0, size=(6, 2)), index=names, columns=["CD3E", "EPCAM"])
    expr.rename_axis("sample_id").to_csv(tmp_path / "expr.csv")
    _ok(["index", "--features", str(folder), "--manifest", str(tmp_path / "slides.csv")], capsys)
    model = tmp_path / "m.skops"
    _ok(
        ["fit", "--features", str(folder), "--expression", str(tmp_path / "expr.csv"),
         "--epochs", "2", "--tile-types", "8", "--validation-fraction", "0", "--out", str(model),
         "--quiet"],
        capsys,
    )  # fmt: skip
    heatmap = ["heatmap", "--model", str(model), "--features", str(folder), "--slide", names[0],
               "--gene", "CD3E"]  # fmt: skip
    _ok([*heatmap, "--out", str(tmp_path / "a.png")], capsys)
    assert (tmp_path / "a.png").stat().st_size > 1000
    _ok([*heatmap, "--slide-mpp", "0.5", "--out", str(tmp_path / "b.png")], capsys)
    err = _error([*heatmap, "--slide-path", str(tmp_path / "gone.svs"), "--out",
                  str(tmp_path / "c.png")], capsys)  # fmt: skip
    assert "in µm" in err and "--slide-mpp" in err and not (tmp_path / "c.png").exists()
    index = pd.read_csv(folder / "index.csv")
    index.loc[index["sample_id"] == names[1], "slide_path"] = None  # a blank cell
    index.to_csv(folder / "index.csv", index=False)
    heatmap[heatmap.index(names[0])] = names[1]
    err = _error([*heatmap, "--out", str(tmp_path / "d.png")], capsys)
    assert "not in the index" in err and "--slide-mpp" in err


# -- issue 18: feature files of other tools, silent wrong results, one-line errors --------
def _pt_folder(tmp_path, n=8, d=8):
    """CLAM-style .pt features (no coordinates), with a manifest and an expression table."""
    import torch

    folder = tmp_path / "pt_files"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"TCGA-AA-{i:04d}-01Z-00-DX1" for i in range(n)]
    for name in names:
        torch.save(
            torch.from_numpy(rng.normal(size=(30, d)).astype(np.float32)), folder / f"{name}.pt"
        )
    expr = pd.DataFrame(rng.gamma(2.0, size=(n, 2)), index=names, columns=["CD3E", "EPCAM"])
    expr.rename_axis("sample_id").to_csv(tmp_path / "expr.csv")
    return folder, names


def test_super_tiles_on_pt_features_cluster_on_features(tmp_path, capsys):
    folder, _ = _pt_folder(tmp_path)
    _ok(["index", "--features", str(folder), "--slide-mpp", "0.5"], capsys)
    assert (pd.read_csv(folder / "index.csv")["slide_mpp"] == 0.5).all()
    fit = ["fit", "--features", str(folder), "--expression", str(tmp_path / "expr.csv"),
           "--super-tiles", "4", "--epochs", "1", "--tile-types", "4", "--validation-fraction", "0",
           "--slide-mpp", "0.5", "--quiet", "--out", str(tmp_path / "m.skops")]  # fmt: skip
    err = _error(fit, capsys)  # .pt files have no coordinates: the error names the option
    assert "have no tile coordinates" in err and "add --cluster-on features" in err
    _ok([*fit, "--cluster-on", "features"], capsys)
    assert (tmp_path / "m.skops").is_file()


def test_export_layouts_are_read_back_as_the_tools_read_them(workspace, features, tmp_path, capsys):
    """`he2rna export` writes plain names in TRIDENT's, CLAM's and STAMP's folders; the
    files are read back as the tools' own readers read them."""
    import h5py
    import torch

    index = read_index_of(features)
    out = _ok(["export", "--features", str(features), "--layout", "trident", "--out",
               str(tmp_path / "trident")], capsys)  # fmt: skip
    assert f"Exported {len(index)} slides" in out
    # TRIDENT: <job>/<mag>x_<size>px_0px_overlap/features_<encoder>/<slide>.h5
    folder = tmp_path / "trident" / "10x_64px_0px_overlap" / "features_resnet18"
    for _, row in index.iterrows():
        name = row["slide_path"].rsplit("/", 1)[1].rsplit(".", 1)[0]
        with h5py.File(folder / f"{name}.h5", "r") as fh:  # TRIDENT's read_coords & co
            attrs, coords = dict(fh["coords"].attrs), fh["coords"][:]
            feats = fh["features"][:]
        ours = load_bags_of(row)
        np.testing.assert_array_equal(feats, np.asarray(ours))
        np.testing.assert_array_equal(coords, ours.coords)
        assert attrs["name"] == name and attrs["overlap"] == 0
        assert attrs["patch_size"] == 64 and attrs["target_magnification"] == 10
        # TRIDENT's patcher: level-0 side = patch_size * level0_mag / target_mag
        side = attrs["patch_size"] * attrs["level0_magnification"] / attrs["target_magnification"]
        assert side == pytest.approx(ours.meta["extent"])
        assert attrs["patch_size_level0"] == round(ours.meta["extent"])  # TRIDENT's: an int
        assert (attrs["level0_width"], attrs["level0_height"]) == slide_size(row["slide_path"])
    # CLAM: h5_files/<slide_id>.h5 and pt_files/<slide_id>.pt, as its dataset reads them
    _ok(["export", "--features", str(features), "--layout", "clam", "--out",
         str(tmp_path / "clam")], capsys)  # fmt: skip
    table = pd.read_csv(tmp_path / "clam" / "dataset.csv")
    assert list(table.columns[:2]) == ["case_id", "slide_id"]
    for (_, row), slide_id in zip(index.iterrows(), table["slide_id"]):
        pt = torch.load(tmp_path / "clam" / "pt_files" / f"{slide_id}.pt")  # CLAM's call
        with h5py.File(tmp_path / "clam" / "h5_files" / f"{slide_id}.h5", "r") as fh:
            feats, coords = fh["features"][:], fh["coords"][:]
        ours = load_bags_of(row)
        np.testing.assert_array_equal(pt.numpy(), np.asarray(ours))
        np.testing.assert_array_equal(feats, np.asarray(ours))
        np.testing.assert_array_equal(coords, ours.coords)
    # STAMP: <out>/<extractor>/<slide>.h5 in µm, and a slide table of PATIENT, FILENAME
    _ok(["export", "--features", str(features), "--layout", "stamp", "--out",
         str(tmp_path / "stamp")], capsys)  # fmt: skip
    table = pd.read_csv(tmp_path / "stamp" / "slide_table.csv")
    assert list(table.columns) == ["PATIENT", "FILENAME"]
    assert list(table["PATIENT"]) == list(index["patient_id"])
    from .features.test_interop import _stamp_coords_um

    for (_, row), filename in zip(index.iterrows(), table["FILENAME"]):
        path = tmp_path / "stamp" / "resnet18" / filename
        coords_um, tile_um = _stamp_coords_um(path)  # STAMP's get_coords
        with h5py.File(path, "r") as fh:
            feats, attrs = fh["feats"][()], dict(fh.attrs)
        ours = load_bags_of(row)
        slide_mpp = ours.meta["slide_mpp"]
        np.testing.assert_allclose(coords_um, ours.coords * slide_mpp)
        assert tile_um == pytest.approx(ours.meta["extent"] * slide_mpp)
        assert tile_um / attrs["tile_size_px"] == pytest.approx(ours.meta["mpp"])  # STAMP's mpp
        assert attrs["feat_type"] == "tile"  # STAMP's detect_feature_type
        np.testing.assert_array_equal(feats, np.asarray(ours))
    # an export never writes among other files; a second export into its folder is fine
    _ok(["export", "--features", str(features), "--layout", "stamp", "--out",
         str(tmp_path / "stamp")], capsys)  # fmt: skip
    err = _error(["export", "--features", str(features), "--layout", "clam", "--out",
                  str(workspace)], capsys)  # fmt: skip
    assert f"Export folder '{workspace}' holds other files" in err


def read_index_of(features):
    from he2rna_sklearn.features import read_index

    return read_index(features)


def load_bags_of(row):
    from he2rna_sklearn.features import read_bag

    return read_bag(row["feature_file"])


def slide_size(path):
    from he2rna_sklearn.slides import SlideReader

    with SlideReader(path) as reader:
        return tuple(reader.dimensions)


def _copy_features(features, tmp_path):
    import shutil

    feats = tmp_path / "features"
    shutil.copytree(features, feats)
    return feats


def test_identity_of_feature_files_is_checked_against_the_index(
    workspace, features, model_file, tmp_path, capsys
):
    """Feature files swapped between same-named slides (a/S.tiff, b/S.tiff), or permuted in
    index.csv with slide_path blanked, are refused instead of served for the wrong sample."""
    import shutil

    from he2rna_sklearn.datasets import write_pyramidal_tiff

    rng = np.random.default_rng(0)
    rows = []
    for folder, sample in (("a", "S-A"), ("b", "S-B")):
        (tmp_path / folder).mkdir()
        image = np.clip(rng.normal([170, 80, 140], 20, (400, 400, 3)), 0, 255).astype(np.uint8)
        path = write_pyramidal_tiff(tmp_path / folder / "S.tiff", image, 0.5)
        rows.append({"slide_path": str(path), "sample_id": sample, "patient_id": sample})
    pd.DataFrame(rows).to_csv(tmp_path / "same.csv", index=False)
    out = tmp_path / "same"
    _ok(_featurize_args(tmp_path / "same.csv", out), capsys)
    index = pd.read_csv(out / "index.csv")
    a, b = (out / f for f in index["feature_file"])
    assert a.name != b.name and a.name.startswith("S.") and b.name.startswith("S.")
    a.rename(tmp_path / "tmp.h5")
    b.rename(a)
    (tmp_path / "tmp.h5").rename(b)  # the two caches swapped
    predict = ["predict", "--model", str(model_file), "--out", str(tmp_path / "p.csv")]
    err = _error([*predict, "--features", str(out)], capsys)
    assert "holds slide 'S'" in err and "S-A" in err and not (tmp_path / "p.csv").exists()
    # index.csv with its feature files permuted and slide_path blanked
    feats = _copy_features(features, tmp_path)
    index = pd.read_csv(feats / "index.csv")
    permuted = index.assign(feature_file=np.roll(index["feature_file"], 1), slide_path="")
    permuted.to_csv(feats / "index.csv", index=False)
    err = _error([*predict, "--features", str(feats)], capsys)
    assert "Feature file" in err and "holds slide" in err
    # also from an index written before slide fingerprints were recorded
    permuted.drop(columns=["slide_fingerprint", "n_tiles"]).to_csv(feats / "index.csv", index=False)
    assert "holds slide" in _error([*predict, "--features", str(feats)], capsys)
    shutil.rmtree(feats)
    # TRIDENT's files name their slide: permuted in an index, they are refused too
    from .features.test_interop import GRID, _features, write_trident

    trident = tmp_path / "trident"
    trident.mkdir()
    for i, name in enumerate(["T1", "T2"]):
        write_trident(trident / f"{name}.h5", GRID * 512, _features(seed=i))
    index = pd.DataFrame(
        {
            "slide_path": ["/x/T1.svs", "/x/T2.svs"],
            "sample_id": ["S1", "S2"],
            "patient_id": ["P1", "P2"],
            "feature_file": ["T2.h5", "T1.h5"],  # permuted
        }
    )
    index.to_csv(trident / "index.csv", index=False)
    err = _error([*predict, "--features", str(trident)], capsys)
    assert "T2.h5' holds slide 'T2'" in err and "sample 'S1'" in err


def test_heatmap_refuses_another_slide_and_a_model_without_tile_scores(
    workspace, features, model_file, tmp_path, capsys
):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    from he2rna_sklearn.persistence import save_model

    index = pd.read_csv(features / "index.csv")
    heatmap = ["heatmap", "--model", str(model_file), "--features", str(features), "--slide",
               index["sample_id"].iloc[0], "--gene", "CD3E"]  # fmt: skip
    other = index["slide_path"].iloc[3]
    err = _error([*heatmap, "--slide-path", other, "--out", str(tmp_path / "h.png")], capsys)
    assert f"Slide '{other}' is not the slide whose features these are" in err
    assert not (tmp_path / "h.png").exists()
    ridge = make_pipeline(Ridge()).fit(np.zeros((3, 2)), np.zeros(3))
    save_model(ridge, tmp_path / "ridge.skops", metadata={"genes": ["CD3E"], "n_features": 2})
    heatmap[2] = str(tmp_path / "ridge.skops")
    err = _error([*heatmap, "--out", str(tmp_path / "h.png")], capsys)
    assert "holds a Ridge, which has no tile scores" in err


def test_ctrl_c_stops_fit_and_evaluate_with_nothing_written(
    workspace, features, tmp_path, capsys, monkeypatch
):
    """skorch ends training at a KeyboardInterrupt and returns normally; the command must
    stop instead (exit 130), without saving the half-trained model or any report."""
    import os
    import signal

    import skorch

    steps = {"n": 0}
    train_step = skorch.NeuralNet.train_step

    def interrupted(self, batch, **kwargs):
        steps["n"] += 1
        if steps["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during training
        return train_step(self, batch, **kwargs)

    monkeypatch.setattr(skorch.NeuralNet, "train_step", interrupted)
    common = _common(workspace, features)
    assert main(["fit", *common, "--out", str(tmp_path / "m.skops")]) == 130
    assert "he2rna fit: interrupted; nothing was written" in capsys.readouterr().err
    steps["n"] = 0
    evaluate = ["evaluate", *common, "--folds", "2", "--out", str(tmp_path / "genes.csv")]
    assert main(evaluate) == 130
    assert "he2rna evaluate: interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_ctrl_c_during_featurize_keeps_whole_slides_and_the_next_run_resumes(
    workspace, tmp_path, capsys, monkeypatch
):
    """Ctrl-C in the second slide: exit 130, the first slide's file is whole, no partial
    file is left, and the next run reuses the first slide and finishes the rest."""
    import os
    import signal

    from he2rna_sklearn.features import _store, read_bag

    slides = pd.read_csv(workspace / "slides.csv").iloc[:3]
    slides.to_csv(tmp_path / "three.csv", index=False)
    out = tmp_path / "features"
    opened = {"n": 0}
    enter, setitem = _store.BagWriter.__enter__, _store.BagWriter.__setitem__

    def counting_enter(self):
        opened["n"] += 1
        return enter(self)

    def interrupted(self, index, values):
        if opened["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the second slide is written
        return setitem(self, index, values)

    monkeypatch.setattr(_store.BagWriter, "__enter__", counting_enter)
    monkeypatch.setattr(_store.BagWriter, "__setitem__", interrupted)
    assert main(_featurize_args(tmp_path / "three.csv", out)) == 130
    assert "interrupted; the slides finished are kept" in capsys.readouterr().err
    left = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "index.csv")
    assert len(left) == 1 and left[0].endswith(".h5"), left  # no temporary, no partial file
    first = out / left[0]
    assert read_bag(first).shape[0] > 0  # whole: its checksums verify
    stamp = first.stat().st_mtime_ns

    monkeypatch.undo()
    assert main(_featurize_args(tmp_path / "three.csv", out)) == 0
    index = pd.read_csv(out / "index.csv")
    assert sorted(index["sample_id"]) == sorted(slides["sample_id"])
    assert first.stat().st_mtime_ns == stamp  # reused, not computed again


def test_concurrent_featurize_runs_into_one_folder_keep_every_slide(workspace, tmp_path):
    """Two `he2rna featurize` processes with different slides into one --out: the index
    lists every slide (the index is merged under a lock when each run ends)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    slides = pd.read_csv(workspace / "slides.csv").iloc[:6]
    half = len(slides) // 2
    slides.iloc[:half].to_csv(tmp_path / "one.csv", index=False)
    slides.iloc[half:].to_csv(tmp_path / "two.csv", index=False)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    run = "import sys; from he2rna_sklearn.cli import main; sys.exit(main(sys.argv[1:]))"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                run,
                *_featurize_args(tmp_path / name, tmp_path / "features"),
            ],  # fmt: skip
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("one.csv", "two.csv")
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    index = pd.read_csv(tmp_path / "features" / "index.csv")
    assert sorted(index["sample_id"]) == sorted(slides["sample_id"])
    assert len(list((tmp_path / "features").glob("*.h5"))) == len(slides)


def test_warnings_of_worker_processes_are_shown_as_the_commands_own(
    workspace, features, tmp_path, capfd
):
    args = _common(workspace, features)
    args[args.index("--genes") + 1] = "NOISE01,NOISE02"
    argv = ["evaluate", *args, "--lr", "1e-9", "--epochs", "1", "--folds", "2", "--jobs", "2"]
    assert main([*argv, "--out", str(tmp_path / "g.csv")]) == 0
    err = capfd.readouterr().err
    assert "he2rna evaluate: warning: HE2RNARegressor predicts nearly constant values" in err
    assert "UserWarning" not in err and ".py:" not in err


def test_outputs_never_overwrite_inputs(workspace, features, model_file, tmp_path, capsys):
    import shutil

    expr = tmp_path / "expr.csv.gz"
    shutil.copy(workspace / "expression.csv.gz", expr)
    before = expr.read_bytes()
    args = _common(workspace, features)
    args[args.index("--expression") + 1] = str(expr)
    err = _error(["fit", *args, "--out", str(expr)], capsys)
    assert f"--out '{expr}' is --expression this command reads" in err
    assert expr.read_bytes() == before
    index = features / "index.csv"
    predict = ["predict", "--model", str(model_file), "--features", str(features)]
    assert "--features (its index)" in _error([*predict, "--out", str(index)], capsys)
    feature_file = features / pd.read_csv(index)["feature_file"].iloc[0]
    assert "a feature file of --features" in _error([*predict, "--out", str(feature_file)], capsys)
    assert "--model" in _error([*predict, "--out", str(model_file)], capsys)
    # the demo writes only into a new or empty folder (or an earlier demo's)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    err = _error(["demo", "--out", str(tmp_path / "mine"), "--quiet"], capsys)
    assert "--out" in err and "notes.txt" in err and "new or empty folder" in err
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_another_backbone_into_an_existing_folder_is_refused_before_any_work(
    workspace, features, tmp_path, capsys, monkeypatch
):
    from he2rna_sklearn import SlideFeaturizer

    feats = _copy_features(features, tmp_path)

    def no_work(self, X):
        raise AssertionError("featurized before refusing")

    monkeypatch.setattr(SlideFeaturizer, "transform", no_work)
    for option in (["--backbone", "resnet34"], ["--tile-size", "32"], ["--mpp", "2.0"]):
        err = _error(_featurize_args(workspace / "slides.csv", feats, *option), capsys)
        assert "cannot share one index" in err and "another --out" in err


def test_usage_errors_of_options(workspace, features, tmp_path, capsys):
    common = _common(workspace, features)
    args = [*common, "--out", str(tmp_path / "g.csv")]
    for folds in ("0", "1"):
        err = _usage_error(["evaluate", *args, "--folds", folds], capsys)
        assert "--folds must be a whole number of at least 2" in err
    i = common.index("--validation-fraction")
    _ok(["fit", *common[:i], "--validation-fraction", "none", *common[i + 2 :], "--out",
         str(tmp_path / "m.skops")], capsys)  # fmt: skip
    assert "fraction in [0, 1)" in _usage_error(
        ["fit", *common[:i], "--validation-fraction", "1.5", "--out", "m.skops"], capsys
    )


def test_index_errors_name_the_options(tmp_path, capsys):
    folder, names = _pt_folder(tmp_path, n=3)
    manifest = pd.DataFrame({"sample_id": [*names, "MISSING"]})
    manifest.to_csv(tmp_path / "m.csv", index=False)
    err = _error(["index", "--features", str(folder), "--manifest", str(tmp_path / "m.csv")],
                 capsys)  # fmt: skip
    assert "Pass --on-missing skip to leave them out" in err and "on_missing" not in err
    manifest.assign(sample_id=[" " + names[0], *names[1:], ""]).to_csv(
        tmp_path / "m.csv", index=False
    )
    err = _error(["index", "--features", str(folder), "--manifest", str(tmp_path / "m.csv")],
                 capsys)  # fmt: skip
    assert f"sample_id ' {names[0]}'" in err and "row 1" in err and "spaces" in err
    # a foreign file whose 'features' is a group: one line
    import h5py

    with h5py.File(folder / "group.h5", "w") as fh:
        fh.create_group("features")["x"] = np.zeros(3)
    err = _error(["index", "--features", str(folder)], capsys)
    assert "group.h5': 'features' is an HDF5 group" in err


def test_duplicated_index_rows_are_refused(features, model_file, tmp_path, capsys):
    feats = _copy_features(features, tmp_path)
    index = pd.read_csv(feats / "index.csv")
    pd.concat([index, index.iloc[:1]]).to_csv(feats / "index.csv", index=False)
    err = _error(["predict", "--model", str(model_file), "--features", str(feats), "--out",
                  str(tmp_path / "p.csv")], capsys)  # fmt: skip
    assert f"'{index['sample_id'].iloc[0]}' is listed more than once" in err
    assert not (tmp_path / "p.csv").exists()


def test_a_huge_plain_image_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 is then a "bomb"
    err = _error(["featurize", str(tmp_path / "huge.png"), "--out", str(tmp_path / "f"),
                  "--slide-mpp", "0.5", "--weights", "none", "--backbone", "resnet18", "--quiet"],
                 capsys)  # fmt: skip
    assert "huge.png': it is a plain image too large" in err and "pyramidal TIFF" in err


def test_unexpected_errors_keep_their_traceback(capsys, monkeypatch):
    from he2rna_sklearn.cli import _commands

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(_commands, "cmd_index", broken)
    assert main(["index", "--features", "x"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: a bug" in err
    assert "he2rna index: unexpected error" in err and "bug" in err


def test_heatmap_of_he2rna_npy_features_places_them_with_the_slide_size(tmp_path, capsys):
    """HE2RNA .npy files address DeepZoom tiles: the heatmap reads the slide's size to
    place them, instead of an error naming read_he2rna_npy(slide_dimensions=...)."""
    import openslide
    import openslide.deepzoom

    from .conftest import CMU_SVS

    level = (
        openslide.deepzoom.DeepZoomGenerator(
            openslide.OpenSlide(str(CMU_SVS)), tile_size=224, overlap=0
        ).level_count
        - 2
    )
    rng = np.random.default_rng(0)
    (tmp_path / "npy").mkdir()
    (tmp_path / "slides").mkdir()
    names = [f"N{i}" for i in range(6)]
    for name in names:
        (tmp_path / "slides" / f"{name}.svs").symlink_to(CMU_SVS)
        cells = np.array([[c, r] for r in range(3) for c in range(3)])
        rows = np.column_stack([np.full(9, level), cells, rng.normal(size=(9, 5))])
        np.save(tmp_path / "npy" / f"{name}.npy", rows)
    pd.DataFrame({"slide_path": [f"slides/{n}.svs" for n in names]}).to_csv(
        tmp_path / "slides.csv", index=False
    )
    expr = pd.DataFrame(rng.gamma(2.0, size=(6, 1)), index=names, columns=["CD3E"])
    expr.rename_axis("sample_id").to_csv(tmp_path / "expr.csv")
    folder = str(tmp_path / "npy")
    _ok(["index", "--features", folder, "--manifest", str(tmp_path / "slides.csv")], capsys)
    _ok(["fit", "--features", folder, "--expression", str(tmp_path / "expr.csv"), "--epochs",
         "1", "--tile-types", "4", "--validation-fraction", "0", "--out", str(tmp_path / "m.skops"),
         "--quiet"], capsys)  # fmt: skip
    heatmap = ["heatmap", "--model", str(tmp_path / "m.skops"), "--features", folder,
               "--slide", "N0", "--gene", "CD3E", "--out", str(tmp_path / "h.png")]  # fmt: skip
    _ok(heatmap, capsys)
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_predict_refuses_features_of_another_encoder_of_the_same_width(
    workspace, model_file, tmp_path, capsys
):
    """Issue 18: a model fitted on ResNet18 features predicted from ResNet34 features (both
    512-d) with exit 0; now one line naming the encoder and the slide, and no output."""
    slides = pd.read_csv(workspace / "slides.csv").iloc[:2]
    slides.to_csv(tmp_path / "two.csv", index=False)
    args = _featurize_args(tmp_path / "two.csv", tmp_path / "r34")
    args[args.index("resnet18")] = "resnet34"
    _ok(args, capsys)
    out = tmp_path / "pred.csv"
    err = _error(
        ["predict", "--model", str(model_file), "--features", str(tmp_path / "r34"),
         "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert "encoder 'resnet18'" in err and "'resnet34' features" in err
    assert f"slide '{slides['sample_id'].iloc[0]}'" in err and not out.exists()


def _trident_cohort(tmp_path, n=6, d=8):
    """TRIDENT-style feature files (no checksum), a manifest and expression, indexed."""
    import h5py

    folder = tmp_path / "trident"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"TCGA-AA-{i:04d}-01Z-00-DX1" for i in range(n)]
    for name in names:
        with h5py.File(folder / f"{name}.h5", "w") as fh:
            fh["features"] = rng.normal(size=(10, d)).astype(np.float32)
            fh["coords"] = np.column_stack([np.arange(10) * 512, np.zeros(10, int)])
            fh["coords"].attrs.update({"patch_size": 256, "patch_size_level0": 512})
    slides = pd.DataFrame({"slide_path": [f"/elsewhere/{s}.svs" for s in names]})
    slides.to_csv(tmp_path / "slides.csv", index=False)
    expr = pd.DataFrame(rng.gamma(2.0, size=(n, 2)), index=names, columns=["CD3E", "EPCAM"])
    expr.rename_axis("sample_id").to_csv(tmp_path / "expr.csv")
    main(["index", "--features", str(folder), "--manifest", str(tmp_path / "slides.csv")])
    return folder, names


def test_predict_refuses_features_that_overflow_the_network(tmp_path, capsys):
    """Issue 18: a finite feature of 1e38 gave a row of NaN predictions with exit 0."""
    import h5py

    folder, names = _trident_cohort(tmp_path)
    fit = ["fit", "--features", str(folder), "--expression", str(tmp_path / "expr.csv"),
           "--epochs", "2", "--tile-types", "4", "--validation-fraction", "0",
           "--quiet"]  # fmt: skip
    _ok([*fit, "--out", str(tmp_path / "m.skops")], capsys)
    with h5py.File(folder / f"{names[2]}.h5", "r+") as fh:
        fh["features"][3, 1] = 1e38
    out = tmp_path / "pred.csv"
    predict = ["predict", "--model", str(tmp_path / "m.skops"), "--features", str(folder)]
    err = _error([*predict, "--out", str(out)], capsys)
    assert f"slide '{names[2]}'" in err and "magnitude up to 1e+38 in 1 of 10 tiles" in err
    assert not out.exists()
    err = _error([*fit, "--out", str(tmp_path / "m2.skops")], capsys)
    assert f"slide '{names[2]}'" in err and "overflow" in err


def test_fit_save_pretrained_then_predict_from_the_folder_or_the_hf_cache(
    workspace, features, tmp_path, capsys, monkeypatch
):
    """Issue 19 part 3: `fit --save-pretrained DIR` writes a pickle-free folder (with its
    super-tiles step) that `predict --model` reads, as a folder or a cached repository."""
    import json

    from tests.model.test_pretrained import assert_no_pickle
    from tests.test_hub import make_cached_repo

    folder = tmp_path / "he2rna-demo"
    common = [*_common(workspace, features), "--super-tiles", "4"]
    args = [*common, "--out", str(tmp_path / "m.skops"), "--save-pretrained", str(folder)]
    out = _ok(["fit", *[a for a in args if a != "--quiet"]], capsys)
    assert f"Saved {folder}/" in out and f"--model {folder}" in out
    assert_no_pickle(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "estimator.safetensors", "genes.txt", "model.safetensors",
    ]  # fmt: skip
    assert json.loads((folder / "config.json").read_text())["steps"][0]["class"] == "SuperTiles"
    predict = ["predict", "--features", str(features), "--quiet"]
    _ok([*predict, "--model", str(tmp_path / "m.skops"), "--out", str(tmp_path / "a.csv")], capsys)
    _ok([*predict, "--model", str(folder), "--out", str(tmp_path / "b.csv")], capsys)
    a, b = (pd.read_csv(tmp_path / f, index_col=0) for f in ("a.csv", "b.csv"))
    pd.testing.assert_frame_equal(a, b)
    assert list(b.columns) == ["CD3E", "EPCAM", "COL1A1", "NOISE01"]
    # The same folder as a repository in the Hugging Face cache.
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    make_cached_repo(tmp_path / "hub", "models--lab--he2rna-demo", files, ref="main")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    _ok([*predict, "--model", "lab/he2rna-demo", "--out", str(tmp_path / "c.csv")], capsys)
    pd.testing.assert_frame_equal(a, pd.read_csv(tmp_path / "c.csv", index_col=0))
    # One-line errors, before any work for fit.
    err = _error([*predict, "--model", "lab/other", "--out", str(tmp_path / "d.csv")], capsys)
    assert "hf download lab/other" in err
    err = _error([*predict, "--model", str(tmp_path / "none"), "--out", "d.csv"], capsys)
    assert "Model not found" in err and "--save-pretrained" in err
    err = _error(["fit", *common, "--out", str(tmp_path / "n.skops"),
                  "--save-pretrained", str(features)], capsys)  # fmt: skip
    assert "not a model saved by he2rna-sklearn" in err and not (tmp_path / "n.skops").exists()
