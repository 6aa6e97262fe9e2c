"""Option values of the ``he2rna`` command, and options that set parameters.

:func:`parameter_option` adds an option stored under the name of the parameter it sets,
with that parameter's default; :func:`parameter_options` finds them again, so that error
messages name the option instead of the parameter.
"""

from __future__ import annotations

import argparse
import inspect

__all__ = [
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
