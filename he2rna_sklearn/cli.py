"""The ``he2rna`` command line (stage 6 of the data flow)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]

_EPILOG = """\
examples:
  he2rna demo                       # the whole job offline on a synthetic cohort
  he2rna demo --out /tmp/demo --n-patients 30
"""


def _weights(value):
    return None if value.lower() in ("none", "random") else value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="he2rna",
        description="Predict tumour gene expression from H&E whole-slide images (HE2RNA).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"he2rna-sklearn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the whole job offline on a synthetic cohort",
        description=(
            "Write a synthetic cohort of slides built from real H&E textures, featurize it, "
            "cross-validate HE2RNA by patient, report per-gene Pearson r and the MSI ROC AUC "
            "of the learned embedding, and save a heatmap of a T-cell marker."
        ),
        epilog="example:\n  he2rna demo --out he2rna-demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--out", default="he2rna-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--n-patients", type=int, default=48, help="patients (default: %(default)s)")
    demo.add_argument(
        "--backbone", default="resnet18", help="torchvision/timm model name (default: %(default)s)"
    )
    demo.add_argument(
        "--weights",
        type=_weights,
        default=None,
        help="'none' (random init, offline), 'imagenet' or a weights file (default: none)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "demo":
        from ._demo import run_demo

        try:
            run_demo(
                args.out,
                n_patients=args.n_patients,
                backbone=args.backbone,
                weights=args.weights,
                random_state=args.seed,
                progress=not args.quiet,
            )
        except (OSError, ValueError) as exc:
            print(f"he2rna demo: error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
