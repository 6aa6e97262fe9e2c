"""The ``he2rna`` command line (stage 6 of the data flow).

Subcommands: ``featurize`` (or ``index``) -> ``fit`` -> ``predict`` / ``evaluate`` ->
``heatmap``, and ``demo``. The parser is built in :mod:`._parser`, the commands run in
:mod:`._commands`. Input errors (a missing file, an unmatched sample id, a duplicated slide)
are reported on one line and give exit status 1.
"""

from __future__ import annotations

import re
import sys
import warnings

from ._inputs import CLIError
from ._parser import build_parser, parameter_options

__all__ = ["build_parser", "main"]


def cli_message(message, parser):
    """Name CLI options instead of Python parameters in an error message.

    ``"The 'tile_size' parameter of SlideFeaturizer must be ..."`` becomes
    ``"--tile-size must be ..."``, ``"slide_mpp=<µm>"`` becomes ``"--slide-mpp <µm>"``, and
    bare multi-word names (``min_tissue_fraction``) become their options; only options that
    the subcommand has are used (:func:`._parser.parameter_options`).
    """
    known = parameter_options(parser)
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
