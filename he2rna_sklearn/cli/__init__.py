"""The ``he2rna`` command line (stage 6 of the data flow).

Subcommands: ``featurize`` -> ``fit`` -> ``predict`` / ``evaluate`` -> ``heatmap``, and
``demo``. Input errors (a missing file, an unmatched sample id, a duplicated slide) are
reported on one line and give exit status 1.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings

from ._inputs import CLIError

__all__ = ["build_parser", "main"]

_RAW = argparse.RawDescriptionHelpFormatter

#: Estimator parameters and the CLI options that set them (for error messages).
_OPTIONS = {
    "backbone": "--backbone",
    "weights": "--weights",
    "mpp": "--mpp",
    "magnification": "--magnification",
    "tile_size": "--tile-size",
    "max_tiles": "--max-tiles",
    "min_tissue_fraction": "--min-tissue-fraction",
    "slide_mpp": "--slide-mpp",
    "batch_size": "--batch-size",
    "num_workers": "--workers",
    "n_jobs": "--jobs",
    "device": "--device",
    "precision": "--precision",
    "on_error": "--on-error",
    "hidden_layer_sizes": "--hidden",
    "max_epochs": "--epochs",
    "lr": "--lr",
    "patience": "--patience",
    "validation_fraction": "--validation-fraction",
    "random_state": "--seed",
    "n_clusters": "--super-tiles",
    "log_transform": "--log-transform",
    "drop_zero_median": "--drop-zero-median",
    "orient": "--orient",
    "n_patients": "--n-patients",
}


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line, naming the command and pointing to its --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} -h)\n")


def cli_message(message, parser):
    """Name CLI options instead of Python parameters in an error message.

    ``"The 'tile_size' parameter of SlideFeaturizer must be ..."`` becomes
    ``"--tile-size must be ..."``, ``"slide_mpp=<µm>"`` becomes ``"--slide-mpp <µm>"``, and
    bare multi-word names (``min_tissue_fraction``) become their options; only options that
    the subcommand has are used.
    """
    options = {o for a in parser._actions for o in a.option_strings}
    known = {k: v for k, v in _OPTIONS.items() if v in options}
    message = " ".join(str(message).split())

    def sub(m):
        return known.get(m[1], m[0])

    message = re.sub(
        r"The '(\w+)' parameter of \w+ must be",
        lambda m: f"{known[m[1]]} must be" if m[1] in known else m[0],
        message,
    )
    message = re.sub(r"\b(\w+)=(?!=)", lambda m: f"{sub(m)} " if m[1] in known else m[0], message)
    message = re.sub(r"(--[\w-]+) None\b", r"\1 none", message)  # the CLI spells it so
    multi = [k for k in known if "_" in k]
    if multi:
        message = re.sub(r"(?<![-\w'/.])(" + "|".join(multi) + r")\b(?![/.])", sub, message)
    return message


_EPILOG = """\
examples:
  he2rna demo                                   # the whole job offline, synthetic data
  he2rna featurize --manifest slides.csv --out features/
  he2rna index --features trident_features/ --manifest slides.csv   # TRIDENT/CLAM/STAMP
  he2rna fit --features features/ --expression expr.csv.gz --log-transform --out model.skops
  he2rna predict --model model.skops --features features/ --out predictions.csv
  he2rna evaluate --features features/ --expression expr.csv.gz --log-transform --out genes.csv
  he2rna heatmap --model model.skops --features features/ --slide TCGA-AA-3489 --gene CD3E

A manifest is a CSV with a slide_path column and optional sample_id and patient_id.
"""


_MODEL_HELP = (
    "a model saved by 'he2rna fit' (skops); files holding other types, and pickle or joblib "
    "files, are refused without being run"
)


def _weights(value):
    return None if value.lower() in ("none", "random") else value


def _slide_mpp(value):
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--slide-mpp must be a number, got {value!r}") from None


def _jobs(value):
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n == 0:
        raise argparse.ArgumentTypeError(
            f"--jobs must be a number of processes (1, 2, ...) or -1 for all cores, got {value!r}"
        )
    return n


def _defaults(estimator):
    """An estimator's default parameters: the CLI's defaults are not restated by hand."""
    return estimator().get_params()


def _add_model_options(p):
    from ..model import HE2RNARegressor

    d = _defaults(HE2RNARegressor)
    g = p.add_argument_group("model")
    g.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=list(d["hidden_layer_sizes"]),
        help="hidden layer sizes (default: %(default)s)",
    )
    g.add_argument(
        "--super-tiles",
        type=int,
        default=0,
        metavar="N",
        help="reduce each slide to N super-tiles first (the paper used 100; default: all tiles)",
    )
    g.add_argument(
        "--epochs", type=int, default=d["max_epochs"], help="maximum epochs (default: %(default)s)"
    )
    g.add_argument("--lr", type=float, default=d["lr"], help="learning rate (default: %(default)s)")
    g.add_argument(
        "--patience", type=int, default=d["patience"], help="early stopping (default: %(default)s)"
    )
    g.add_argument(
        "--validation-fraction",
        type=float,
        default=d["validation_fraction"],
        help="patients held out for early stopping; 0 disables (default: %(default)s)",
    )
    # The estimator's default (None) is unseeded; the command line is reproducible.
    g.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    g.add_argument("--verbose", type=int, default=d["verbose"], help="1 prints the epoch table")


def _add_expression_options(p):
    p.add_argument("--features", required=True, help="folder (or index.csv) from featurize")
    p.add_argument(
        "--expression",
        required=True,
        help="expression table: CSV/TSV(.gz), genes x samples or samples x genes",
    )
    p.add_argument("--log-transform", action="store_true", help="apply log10(1 + x)")
    p.add_argument(
        "--drop-zero-median",
        action="store_true",
        help="drop genes with zero median, as the paper did",
    )
    p.add_argument("--genes", help="comma-separated genes to model (default: all)")
    p.add_argument(
        "--match",
        choices=["exact", "tcga-sample"],
        default="exact",
        help="how sample ids meet expression columns (default: exact)",
    )
    p.add_argument(
        "--orient",
        choices=["auto", "genes_x_samples", "samples_x_genes"],
        default="auto",
        help="layout of the expression table; auto finds the samples of the feature index "
        "in its header or first column (default: auto)",
    )


def _add_index_parser(sub):
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
    p.add_argument(
        "--on-missing",
        default="raise",
        choices=["raise", "skip"],
        help="manifest rows without a feature file: error or leave out (default: raise)",
    )
    p.add_argument("--quiet", action="store_true")


def build_parser():
    from .._version import __version__
    from ..features import SlideFeaturizer

    parser = _Parser(
        prog="he2rna",
        description="Predict tumour gene expression from H&E whole-slide images (HE2RNA).",
        epilog=_EPILOG,
        formatter_class=_RAW,
    )
    parser.add_argument("--version", action="version", version=f"he2rna-sklearn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

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
    f = _defaults(SlideFeaturizer)
    p.add_argument("slides", nargs="*", help="slide files (or use --manifest)")
    p.add_argument("--manifest", help="CSV with slide_path[, sample_id, patient_id]")
    p.add_argument(
        "--out",
        required=True,
        help="output folder (feature files + index.csv; a rerun adds to its index.csv)",
    )
    p.add_argument(
        "--backbone",
        default=f["backbone"],
        help="encoder (uni, virchow2, h-optimus-1, ...) or torchvision/timm name "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--weights",
        type=_weights,
        default=f["weights"],
        help="'imagenet', 'pretrained' (an encoder's, from the Hugging Face cache), a "
        "weights file, or 'none' for random (default: %(default)s)",
    )
    p.add_argument("--mpp", type=float, help="tile resolution in µm/px (default: 0.5)")
    p.add_argument("--magnification", type=float, help="alternative to --mpp (20 = 0.5 µm/px)")
    p.add_argument(
        "--tile-size",
        type=int,
        default=f["tile_size"],
        help="tile size in px (default: %(default)s)",
    )
    p.add_argument(
        "--max-tiles", type=int, default=f["max_tiles"], help="per slide (default: %(default)s)"
    )
    p.add_argument(
        "--min-tissue-fraction",
        type=float,
        default=f["min_tissue_fraction"],
        help="tissue fraction of a kept tile (default: %(default)s)",
    )
    p.add_argument("--slide-mpp", type=_slide_mpp, help="base µm/px of slides without metadata")
    p.add_argument("--batch-size", type=int, default=f["batch_size"], help="(default: %(default)s)")
    p.add_argument(
        "--workers",
        type=int,
        default=f["num_workers"],
        help="tile-reading worker processes (default: %(default)s)",
    )
    p.add_argument(
        "--jobs", type=_jobs, default=f["n_jobs"], help="slides in parallel (joblib; -1: all cores)"
    )
    p.add_argument("--device", default=f["device"], help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--precision",
        default=f["precision"],
        choices=["auto", "fp32", "bf16", "fp16"],
        help="(default: %(default)s)",
    )
    p.add_argument(
        "--on-error",
        default=f["on_error"],
        choices=["raise", "skip"],
        help="skip slides that cannot be read (default: %(default)s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser(
        "fit",
        help="train HE2RNA on features and expression; save the model (skops)",
        formatter_class=_RAW,
        epilog="examples:\n"
        "  he2rna fit --features features/ --expression expr.csv.gz --log-transform "
        "--out model.skops\n"
        "  he2rna fit --features features/ --expression expr.tsv --genes CD3E,EPCAM "
        "--super-tiles 100 --match tcga-sample --out model.skops",
    )
    _add_expression_options(p)
    p.add_argument(
        "--out",
        required=True,
        help="model file (.skops: loads without running code, unlike pickle/joblib)",
    )
    p.add_argument("--quiet", action="store_true")
    _add_model_options(p)

    p = sub.add_parser(
        "predict",
        help="predict expression for featurized slides",
        formatter_class=_RAW,
        epilog="example:\n  he2rna predict --model model.skops --features features/ "
        "--out predictions.csv",
    )
    p.add_argument("--model", required=True, help=_MODEL_HELP)
    p.add_argument("--features", required=True)
    p.add_argument("--out", required=True, help="CSV: slides x genes")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser(
        "evaluate",
        help="cross-validate by patient and report every gene",
        formatter_class=_RAW,
        epilog="example:\n  he2rna evaluate --features features/ --expression expr.csv.gz "
        "--log-transform --folds 5 --out genes.csv\n"
        "writes genes.csv (pooled r, one-sided p, Holm and BH), genes_per_fold.csv and "
        "genes_predictions.csv",
    )
    _add_expression_options(p)
    p.add_argument("--folds", type=int, default=5, help="GroupKFold by patient (default: 5)")
    p.add_argument("--jobs", type=_jobs, default=None, help="folds in parallel (joblib)")
    p.add_argument("--out", required=True, help="per-gene CSV")
    p.add_argument("--quiet", action="store_true")
    _add_model_options(p)

    p = sub.add_parser(
        "heatmap",
        help="paint a gene's tile scores over a slide thumbnail (PNG)",
        formatter_class=_RAW,
        epilog="examples:\n  he2rna heatmap --model model.skops --features features/ "
        "--slide SAMPLE_ID --gene CD3E --out cd3e.png\n"
        "  he2rna heatmap ... --gene CD3E,CD8A,MS4A1   # a gene set (mean z-score)",
    )
    p.add_argument("--model", required=True, help=_MODEL_HELP)
    p.add_argument("--features", required=True)
    p.add_argument("--slide", required=True, help="sample id of the slide (see index.csv)")
    p.add_argument("--gene", required=True, help="a gene, or comma-separated gene set")
    p.add_argument("--slide-path", help="the slide file, if it moved since featurize")
    p.add_argument(
        "--slide-mpp",
        type=_slide_mpp,
        help="the slide's level-0 µm/px, for tile coordinates in µm (STAMP) when the slide "
        "file has no resolution metadata (default: read from the slide file)",
    )
    p.add_argument("--out", required=True, help="PNG file")
    p.add_argument("--quiet", action="store_true")

    _add_index_parser(sub)

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
    p.add_argument("--out", default="he2rna-demo", help="output folder (default: %(default)s)")
    p.add_argument("--n-patients", type=int, default=48, help="patients (default: %(default)s)")
    p.add_argument(
        "--backbone", default="resnet18", help="torchvision/timm model name (default: %(default)s)"
    )
    p.add_argument(
        "--weights",
        type=_weights,
        default=None,
        help="'none' (random init, offline), 'imagenet' or a weights file (default: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv=None):
    """Entry point of the ``he2rna`` command; returns the exit status."""
    from . import _commands

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    sub = parser._subparsers._group_actions[0].choices[args.command]
    command = getattr(_commands, f"cmd_{args.command}")
    prefix = f"he2rna {args.command}"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}: warning: {cli_message(message, sub)}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            return command(args)
    except (CLIError, OSError, ValueError) as exc:
        print(f"{prefix}: error: {cli_message(exc, sub)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted; rerun to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
