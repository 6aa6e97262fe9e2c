"""Option values of the ``he2rna`` command, and options that set parameters.

:func:`parameter_option` adds an option stored under the name of the parameter it sets,
with that parameter's default; :func:`parameter_options` finds them again, so that error
messages name the option instead of the parameter. The groups of options that several
subcommands share (the expression table, the model, ``--slide-mpp``) are added by
:func:`add_expression_options`, :func:`add_model_options` and :func:`add_slide_mpp_option`.
"""

from __future__ import annotations

import argparse
import inspect

__all__ = [
    "add_expression_options",
    "add_model_options",
    "add_slide_mpp_option",
    "folds_arg",
    "jobs_arg",
    "parameter_option",
    "parameter_options",
    "signature_defaults",
    "slide_mpp_arg",
    "spell",
    "validation_fraction_arg",
    "weights_arg",
]


# -- values -------------------------------------------------------------------------------
def weights_arg(value):
    return None if value.lower() in ("none", "random") else value


def slide_mpp_arg(value):
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--slide-mpp must be a number, got {value!r}") from None


def tile_types_arg(value):
    """A number of tile types (at least 2), or ``none`` (the paper's network)."""
    if value.lower() == "none":
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 2:
        raise argparse.ArgumentTypeError(
            f"--tile-types must be an integer of at least 2 or 'none', got {value!r}"
        )
    return number


def learning_rate_arg(value):
    """A positive learning rate, or ``auto``."""
    if value.lower() == "auto":
        return "auto"
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not rate > 0:
        raise argparse.ArgumentTypeError(f"--lr must be a positive number or 'auto', got {value!r}")
    return rate


def validation_fraction_arg(value):
    """A fraction in [0, 1), or ``none`` (no early stopping; 0 says the same)."""
    if value.lower() == "none":
        return None
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not 0 <= fraction < 1:
        raise argparse.ArgumentTypeError(
            f"--validation-fraction must be a fraction in [0, 1) or 'none', got {value!r}"
        )
    return fraction


def folds_arg(value):
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 2:
        raise argparse.ArgumentTypeError(
            f"--folds must be a whole number of at least 2 (each fold is tested once), "
            f"got {value!r}"
        )
    return n


def jobs_arg(value):
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n == 0:
        raise argparse.ArgumentTypeError(
            f"--jobs must be a number of processes (1, 2, ...) or -1 for all cores, got {value!r}"
        )
    return n


def spell(value):
    """A default as the command line spells it (None is ``none``)."""
    return "none" if value is None else value


# -- parameter options ----------------------------------------------------------------------
def signature_defaults(function):
    """A function's keyword defaults."""
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def parameter_option(group, flag, defaults, *, dest=None, **kwargs):
    """Add ``flag``, which sets the parameter ``dest`` (default: the flag's own name).

    Its default is ``defaults[dest]`` (an estimator's ``get_params()`` or a function's
    signature) unless ``default=`` says otherwise, with the reason beside it.
    """
    name = flag.lstrip("-").replace("-", "_")
    dest = dest or name
    if "choices" not in kwargs and kwargs.get("action") not in ("store_true", "store_false"):
        kwargs.setdefault("metavar", name.upper())  # the option's name, not the parameter's
    if "default" not in kwargs:
        kwargs["default"] = defaults[dest]
    action = group.add_argument(flag, dest=dest, **kwargs)
    action.sets_parameter = True
    return action


def parameter_options(parser):
    """The parameters a subcommand's options set, and the option of each (for messages)."""
    return {
        a.dest: a.option_strings[-1] for a in parser._actions if getattr(a, "sets_parameter", 0)
    }


# -- groups of options that several subcommands share ---------------------------------------
def add_expression_options(p):
    """The training data of ``fit`` and ``evaluate``: the feature index, the expression
    table, how it is read and how its samples meet the index, and ``--slide-mpp``."""
    from ..datasets import load_expression
    from ._inputs import match_expression

    e = signature_defaults(load_expression)
    p.add_argument("--features", required=True, help="folder (or index.csv) from featurize")
    p.add_argument(
        "--expression",
        required=True,
        help="expression table: CSV/TSV(.gz), genes x samples or samples x genes",
    )
    parameter_option(p, "--log-transform", e, action="store_true", help="apply log10(1 + x)")
    parameter_option(
        p,
        "--drop-zero-median",
        e,
        action="store_true",
        help="drop genes with zero median, as the paper did",
    )
    p.add_argument("--genes", help="comma-separated genes to model (default: all)")
    p.add_argument(
        "--match",
        choices=["exact", "tcga-sample"],
        default=signature_defaults(match_expression)["match"],
        help="how sample ids meet expression columns (default: %(default)s)",
    )
    parameter_option(
        p,
        "--orient",
        e,
        choices=["auto", "genes_x_samples", "samples_x_genes"],
        help="layout of the expression table; auto finds the samples of the feature index "
        "in its header or first column (default: %(default)s)",
    )
    add_slide_mpp_option(p)


def add_slide_mpp_option(p):
    """``--slide-mpp``, for the commands that read bags whose tile coordinates may be in µm."""
    from ..features import read_bag

    parameter_option(
        p,
        "--slide-mpp",
        signature_defaults(read_bag),
        type=slide_mpp_arg,
        help="the slides' level-0 µm/px, for tile coordinates in µm (STAMP) when the index "
        "has no slide_mpp column (see 'he2rna index --slide-mpp') and the slide files have "
        "no resolution metadata (default: read from there)",
    )


def add_model_options(p):
    """The model of ``fit`` and ``evaluate``: HE2RNARegressor's parameters, and SuperTiles'
    (``--super-tiles``, ``--cluster-on``)."""
    from ..bags import SuperTiles
    from ..model import HE2RNARegressor

    r = HE2RNARegressor().get_params()
    g = p.add_argument_group(
        "model",
        "HE2RNARegressor at its defaults (the tile-type network), except --seed. With\n"
        "--tile-types none (the paper's network), the top-k values (ks) follow the bags:\n"
        "the paper's KS_SUPER_TILES with --super-tiles, its KS_ALL_TILES without (not the\n"
        "regressor's default KS_DEFAULT, both sets together).",
    )
    parameter_option(
        g,
        "--tile-types",
        r,
        type=tile_types_arg,
        help="tile types of the tile-type network, or none for the paper's network (an MLP "
        "with top-k pooling; see --hidden) (default: %(default)s)",
    )
    parameter_option(
        g,
        "--hidden",
        r,
        dest="hidden_layer_sizes",
        type=int,
        nargs="+",
        default=list(r["hidden_layer_sizes"]),
        help="hidden layer sizes of the paper's network (--tile-types none) (default: %(default)s)",
    )
    parameter_option(
        g,
        "--super-tiles",
        SuperTiles().get_params(),
        dest="n_clusters",
        type=int,
        default=0,  # off: SuperTiles is a step only when asked for
        metavar="N",
        help="reduce each slide to N super-tiles first (the paper used 100; default: all tiles)",
    )
    parameter_option(
        g,
        "--cluster-on",
        SuperTiles().get_params(),
        choices=["coords", "features"],
        help="with --super-tiles: k-means on tile positions (the paper's) or on tile features "
        "(SEQUOIA's; needs no coordinates, e.g. for .pt features) (default: %(default)s)",
    )
    parameter_option(
        g, "--epochs", r, dest="max_epochs", type=int, help="maximum epochs (default: %(default)s)"
    )
    parameter_option(
        g,
        "--lr",
        r,
        type=learning_rate_arg,
        help="learning rate, or auto (1e-3 for the tile-type network, 1e-4 for the paper's) "
        "(default: %(default)s)",
    )
    parameter_option(g, "--patience", r, type=int, help="early stopping (default: %(default)s)")
    parameter_option(
        g,
        "--validation-fraction",
        r,
        type=validation_fraction_arg,
        help="patients held out for early stopping; 0 or none disables (default: %(default)s)",
    )
    parameter_option(
        g,
        "--seed",
        r,
        dest="random_state",
        type=int,
        default=0,  # the estimator's default (None) is unseeded; the command line reproduces
        help="random seed (default: %(default)s)",
    )
    parameter_option(g, "--verbose", r, type=int, help="1 prints the epoch table")
