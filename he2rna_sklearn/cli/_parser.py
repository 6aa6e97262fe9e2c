"""The ``he2rna`` argument parser: one ``_add_<command>_parser`` per subcommand.

An option that sets a parameter of an estimator or function is stored under the parameter's
name (``--workers`` in ``num_workers``, ``--epochs`` in ``max_epochs``), and its default is
read from there (``get_params()``, or the function's signature), not restated here: see
:mod:`._options`. Error messages name these options instead of the parameters
(:func:`parameter_options`); ``cmd_<command>`` in :mod:`._commands` passes them on.
"""

from __future__ import annotations

import argparse

from ._options import (
    add_expression_options,
    add_model_options,
    add_slide_mpp_option,
    folds_arg,
    jobs_arg,
    parameter_option,
    parameter_options,
    signature_defaults,
    slide_mpp_arg,
    spell,
    weights_arg,
)

__all__ = ["build_parser", "parameter_options"]

_RAW = argparse.RawDescriptionHelpFormatter

_EPILOG = """\
examples:
  he2rna demo                                   # the whole job offline, synthetic data
  he2rna featurize --manifest slides.csv --out features/
  he2rna index --features trident_features/ --manifest slides.csv   # TRIDENT/CLAM/STAMP
  he2rna fit --features features/ --expression expr.csv.gz --log-transform --out model.skops
  he2rna predict --model model.skops --features features/ --out predictions.csv
  he2rna evaluate --features features/ --expression expr.csv.gz --log-transform --out genes.csv
  he2rna heatmap --model model.skops --features features/ --slide TCGA-AA-3489 --gene CD3E
  he2rna export --features features/ --layout trident --out trident_job/   # or clam, stamp

A manifest is a CSV with a slide_path column and optional sample_id and patient_id.
"""

_MODEL_HELP = (
    "a model saved by 'he2rna fit' (skops), or a folder written by 'he2rna fit "
    "--save-pretrained' (or save_pretrained), or the repository id (org/name) of such a "
    "folder in the Hugging Face cache; files holding other types, and pickle or joblib "
    "files, are refused without being run"
)


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line, naming the command and pointing to its --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} -h)\n")


# -- subcommands ----------------------------------------------------------------------------
def _add_featurize_parser(sub):
    from ..features import DEFAULT_MPP, SlideFeaturizer

    p = sub.add_parser(
        "featurize",
        help="tile slides and compute tile features (one HDF5 file per slide)",
        formatter_class=_RAW,
        description="Tile slides at a physical resolution and run a CNN on every tissue tile. "
        "Finished slides are skipped on a rerun; an interrupted run resumes.",
        epilog="examples:\n"
        "  he2rna featurize slides/*.svs --out features/\n"
        "  he2rna featurize --manifest slides.csv --out features/ --backbone resnet50 "
        "--weights imagenet --mpp 0.5 --workers 2\n"
        "  he2rna featurize --manifest slides.csv --out features/ --weights "
        "resnet50.pth --on-error skip",
    )
    f = SlideFeaturizer().get_params()
    p.add_argument("slides", nargs="*", help="slide files (or use --manifest)")
    p.add_argument("--manifest", help="CSV with slide_path[, sample_id, patient_id]")
    p.add_argument(
        "--out",
        required=True,
        help="output folder (feature files + index.csv; a rerun adds to its index.csv)",
    )
    parameter_option(
        p,
        "--backbone",
        f,
        help="encoder (uni, virchow2, h-optimus-1, ...) or torchvision/timm name "
        "(default: %(default)s)",
    )
    parameter_option(
        p,
        "--weights",
        f,
        type=weights_arg,
        help="'imagenet', 'pretrained' (an encoder's, from the Hugging Face cache), a "
        "weights file, or 'none' for random (default: %(default)s)",
    )
    parameter_option(
        p, "--mpp", f, type=float, help=f"tile resolution in µm/px (default: {DEFAULT_MPP})"
    )
    parameter_option(
        p, "--magnification", f, type=float, help="alternative to --mpp (20 = 0.5 µm/px)"
    )
    parameter_option(p, "--tile-size", f, type=int, help="tile size in px (default: %(default)s)")
    parameter_option(p, "--max-tiles", f, type=int, help="per slide (default: %(default)s)")
    parameter_option(
        p,
        "--min-tissue-fraction",
        f,
        type=float,
        help="tissue fraction of a kept tile (default: %(default)s)",
    )
    parameter_option(
        p,
        "--keep-pen-marks",
        f,
        dest="exclude_pen_marks",
        action="store_false",
        help="keep blue, green and black pen marks in the automatic tissue mask (by "
        "default they are left out; e.g. for blue-counterstained IHC)",
    )
    parameter_option(
        p, "--slide-mpp", f, type=slide_mpp_arg, help="base µm/px of slides without metadata"
    )
    parameter_option(p, "--batch-size", f, type=int, help="(default: %(default)s)")
    parameter_option(
        p,
        "--workers",
        f,
        dest="num_workers",
        type=int,
        help="tile-reading worker processes (default: %(default)s)",
    )
    parameter_option(
        p,
        "--jobs",
        f,
        dest="n_jobs",
        type=jobs_arg,
        help="slides in parallel (joblib; -1: all cores)",
    )
    parameter_option(p, "--device", f, help="auto, cpu, cuda or cuda:N")
    parameter_option(
        p,
        "--precision",
        f,
        choices=["auto", "fp32", "bf16", "fp16"],
        help="(default: %(default)s)",
    )
    parameter_option(
        p,
        "--on-error",
        f,
        choices=["raise", "skip"],
        help="skip slides that cannot be read (default: %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_fit_parser(sub):
    p = sub.add_parser(
        "fit",
        help="train HE2RNA on features and expression; save the model (skops)",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  he2rna fit --features features/ --expression expr.csv.gz --log-transform "
        "--out model.skops\n"
        "  he2rna fit --features features/ --expression expr.tsv --genes CD3E,EPCAM "
        "--super-tiles 100 --match tcga-sample --out model.skops\n"
        "  he2rna fit --features features/ --expression expr.csv.gz --out model.skops "
        "--save-pretrained he2rna-coad/",
    )
    add_expression_options(p)
    p.add_argument(
        "--out",
        required=True,
        help="model file (.skops: loads without running code, unlike pickle/joblib)",
    )
    p.add_argument(
        "--save-pretrained",
        metavar="DIR",
        help="also write the model to folder DIR in the Hugging Face layout (safetensors, "
        "JSON, gene list, model card; no pickle), to share it or 'he2rna predict --model DIR'",
    )
    p.add_argument("--quiet", action="store_true")
    add_model_options(p)


def _add_model_and_features(p):
    """``--model`` and ``--features``: a saved model and the features it is applied to."""
    p.add_argument("--model", required=True, help=_MODEL_HELP)
    p.add_argument("--features", required=True)


def _add_predict_parser(sub):
    p = sub.add_parser(
        "predict",
        help="predict expression for featurized slides",
        formatter_class=_RAW,
        epilog="examples:\n  he2rna predict --model model.skops --features features/ "
        "--out predictions.csv\n"
        "  he2rna predict --model he2rna-coad/ --features features/ --out predictions.csv",
    )
    _add_model_and_features(p)
    p.add_argument("--out", required=True, help="CSV: slides x genes")
    p.add_argument("--quiet", action="store_true")


def _add_evaluate_parser(sub):
    from sklearn.model_selection import GroupKFold

    from ..evaluation import cross_validate_genes

    p = sub.add_parser(
        "evaluate",
        help="cross-validate by patient and report every gene",
        formatter_class=_RAW,
        epilog="example:\n  he2rna evaluate --features features/ --expression expr.csv.gz "
        "--log-transform --folds 5 --out genes.csv\n"
        "writes genes.csv (pooled r, one-sided p, Holm and BH), genes_per_fold.csv and "
        "genes_predictions.csv",
    )
    add_expression_options(p)
    p.add_argument(
        "--folds",
        type=folds_arg,
        default=GroupKFold().get_n_splits(),  # cross_validate_genes' default folds
        help="GroupKFold by patient, at least 2 (default: %(default)s)",
    )
    parameter_option(
        p,
        "--jobs",
        signature_defaults(cross_validate_genes),
        dest="n_jobs",
        type=jobs_arg,
        help="folds in parallel (joblib)",
    )
    p.add_argument("--out", required=True, help="per-gene CSV")
    p.add_argument("--quiet", action="store_true")
    add_model_options(p)


def _add_heatmap_parser(sub):
    p = sub.add_parser(
        "heatmap",
        help="paint a gene's tile scores over a slide thumbnail (PNG)",
        formatter_class=_RAW,
        epilog="examples:\n  he2rna heatmap --model model.skops --features features/ "
        "--slide SAMPLE_ID --gene CD3E --out cd3e.png\n"
        "  he2rna heatmap ... --gene CD3E,CD8A,MS4A1   # a gene set (mean z-score)",
    )
    _add_model_and_features(p)
    p.add_argument("--slide", required=True, help="sample id of the slide (see index.csv)")
    p.add_argument("--gene", required=True, help="a gene, or comma-separated gene set")
    p.add_argument("--slide-path", help="the slide file, if it moved since featurize")
    add_slide_mpp_option(p)
    p.add_argument("--out", required=True, help="PNG file")
    p.add_argument("--quiet", action="store_true")


def _add_index_parser(sub):
    from ..features import build_index

    p = sub.add_parser(
        "index",
        help="index feature files made by other tools (TRIDENT, CLAM, STAMP, HE2RNA)",
        formatter_class=_RAW,
        description="Write the index.csv that fit/evaluate/predict/heatmap read, for a folder "
        "of feature files made elsewhere (.h5, .pt, .npy, searched recursively). Files are "
        "matched to the manifest by stem: the slide file's stem, as these tools name them.",
        epilog="examples:\n"
        "  he2rna index --features trident/20x_256px_0px_overlap/features_uni_v1 "
        "--manifest slides.csv\n"
        "  he2rna index --features clam/h5_files --manifest slides.csv --out uni/index.csv\n"
        "  he2rna fit --features trident/20x_256px_0px_overlap/features_uni_v1 "
        "--expression expr.csv.gz --log-transform --out model.skops\n"
        "The manifest is a CSV with slide_path, slide_id or sample_id, and optionally "
        "patient_id and feature_file.",
    )
    p.add_argument("--features", required=True, help="folder of feature files")
    p.add_argument("--manifest", help="CSV: sample_id / slide_id / slide_path [, patient_id]")
    p.add_argument("--out", help="index file or folder (default: FEATURES/index.csv)")
    parameter_option(
        p,
        "--on-missing",
        signature_defaults(build_index),
        choices=["raise", "skip"],
        help="manifest rows without a feature file: error or leave out (default: %(default)s)",
    )
    parameter_option(
        p,
        "--slide-mpp",
        signature_defaults(build_index),
        type=slide_mpp_arg,
        help="the slides' level-0 µm/px, recorded in the index (slide_mpp column), so that "
        "tile coordinates in µm (STAMP) are placed on slides without reading the slide files",
    )
    p.add_argument("--quiet", action="store_true")


def _add_export_parser(sub):
    from ..features import EXPORT_LAYOUTS

    p = sub.add_parser(
        "export",
        help="copy feature files into the layout of TRIDENT, CLAM or STAMP (plain names)",
        formatter_class=_RAW,
        description="Write the slides of a features folder (its index.csv) as another tool "
        "reads them: TRIDENT's OUT/<mag>x_<size>px_0px_overlap/features_<encoder>/<slide>.h5, "
        "CLAM's OUT/h5_files/<slide>.h5 and OUT/pt_files/<slide>.pt (with dataset.csv), or "
        "STAMP's OUT/<encoder>/<slide>.h5 (coordinates in µm, with slide_table.csv). Files "
        "are named by the slide file's stem, as these tools name them.",
        epilog="examples:\n"
        "  he2rna export --features features/ --layout trident --out trident_job/\n"
        "  he2rna export --features features/ --layout clam --out clam_features/\n"
        "  he2rna export --features features/ --layout stamp --out stamp_features/",
    )
    p.add_argument("--features", required=True, help="folder (or index.csv) from featurize")
    p.add_argument("--layout", required=True, choices=list(EXPORT_LAYOUTS))
    p.add_argument(
        "--out",
        required=True,
        help="a new or empty folder (or an earlier export's), the tool's job or feature folder",
    )
    add_slide_mpp_option(p)
    p.add_argument("--quiet", action="store_true")


def _add_demo_parser(sub):
    from .._demo import run_demo

    d = signature_defaults(run_demo)
    p = sub.add_parser(
        "demo",
        help="run the whole job offline on a synthetic cohort",
        description="Write a synthetic cohort of slides built from real H&E textures, "
        "featurize it, cross-validate HE2RNA by patient, report per-gene Pearson "
        "r and the MSI ROC AUC of the learned embedding, and save a heatmap of a "
        "T-cell marker.",
        epilog="example:\n  he2rna demo --out he2rna-demo",
        formatter_class=_RAW,
    )
    parameter_option(p, "--out", d, dest="out_dir", help="output folder (default: %(default)s)")
    parameter_option(p, "--n-patients", d, type=int, help="patients (default: %(default)s)")
    parameter_option(p, "--backbone", d, help="torchvision/timm model name (default: %(default)s)")
    parameter_option(
        p,
        "--weights",
        d,
        type=weights_arg,
        help="'none' (random init, offline), 'imagenet' or a weights file (default: "
        f"{spell(d['weights'])})",
    )
    parameter_option(
        p, "--seed", d, dest="random_state", type=int, help="random seed (default: %(default)s)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser():
    """The ``he2rna`` parser, with its subcommands."""
    from .._version import __version__

    parser = _Parser(
        prog="he2rna",
        description="Predict tumour gene expression from H&E whole-slide images (HE2RNA).",
        epilog=_EPILOG,
        formatter_class=_RAW,
    )
    parser.add_argument("--version", action="version", version=f"he2rna-sklearn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (
        _add_featurize_parser,
        _add_fit_parser,
        _add_predict_parser,
        _add_evaluate_parser,
        _add_heatmap_parser,
        _add_index_parser,
        _add_export_parser,
        _add_demo_parser,
    ):
        add(sub)
    return parser
