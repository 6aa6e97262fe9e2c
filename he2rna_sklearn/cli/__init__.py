"""The ``he2rna`` command line (stage 6 of the data flow).

Subcommands: ``featurize`` (or ``index``) -> ``fit`` -> ``predict`` / ``evaluate`` ->
``heatmap``, ``export`` and ``demo``. The parser is built in :mod:`._parser`, the commands
run in :mod:`._commands`. Errors in the user's input (a missing file, an unmatched sample
id, a duplicated slide; every ``OSError`` and ``ValueError``, which the package's own
exceptions are) are reported on one line and give exit status 1; usage errors give 2; an
interrupt (Ctrl-C) stops the command with exit status 130 and writes nothing partial. Any
other exception is a bug: its traceback is shown, with a line asking to report it.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import traceback
import warnings
from contextlib import contextmanager

from ._inputs import CLIError
from ._parser import build_parser, parameter_options

__all__ = ["build_parser", "main"]


def _cli_message(message, known):
    """:func:`cli_message` with the subcommand's options given as ``{parameter: option}``."""
    message = " ".join(str(message).split())

    def sub(m):
        return known.get(m[1], m[0])

    message = re.sub(
        r"The '(\w+)' parameter of \w+ must be",
        lambda m: f"{known[m[1]]} must be" if m[1] in known else m[0],
        message,
    )
    message = re.sub(  # name='value' -> --name value (a shell word needs no quotes)
        r"\b(\w+)=(?!=)(?:(['\"])([\w.-]+)\2(?!\s+(?:is|must|was|has)\b))?",
        lambda m: f"{sub(m)} {m[3] or ''}" if m[1] in known else m[0],
        message,
    )
    message = re.sub(r"(--[\w-]+) None\b", r"\1 none", message)  # the CLI spells it so
    multi = [k for k in known if "_" in k]
    if multi:
        message = re.sub(r"(?<![-\w'/.])(" + "|".join(multi) + r")\b(?![/.])", sub, message)
    return message


def cli_message(message, parser):
    """Name CLI options instead of Python parameters in an error message.

    ``"The 'tile_size' parameter of SlideFeaturizer must be ..."`` becomes
    ``"--tile-size must be ..."``, ``"slide_mpp=<µm>"`` becomes ``"--slide-mpp <µm>"``,
    ``"on_missing='skip'"`` becomes ``"--on-missing skip"``, and bare multi-word names
    (``min_tissue_fraction``) become their options; only options that the subcommand has
    are used (:func:`._parser.parameter_options`).
    """
    return _cli_message(message, parameter_options(parser))


def _show_warnings(prefix, known):
    """Show warnings as ``he2rna <command>: warning: ...`` lines naming CLI options."""

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}: warning: {_cli_message(message, known)}", file=sys.stderr)

    warnings.showwarning = show_warning


class _Interrupted(BaseException):
    """Ctrl-C. Not a ``KeyboardInterrupt``, which skorch catches in its training loop
    (``NeuralNet.partial_fit``) to end training early and return normally: the command
    would then save a half-trained model, or report a fold cut short, with exit 0."""


@contextmanager
def _interrupts_stop_the_command():
    """While the command runs, Ctrl-C (SIGINT) raises :class:`_Interrupted`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    pid = os.getpid()

    def interrupt(signum, frame):
        if os.getpid() != pid:  # a forked worker (DataLoader): stop as it expects
            raise KeyboardInterrupt
        raise _Interrupted()

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _workers_show_warnings(prefix, known):
    """Worker processes (``--jobs``) show their warnings as this process does."""
    from joblib import parallel_config

    with parallel_config(backend="loky", initializer=_show_warnings, initargs=(prefix, known)):
        yield


_NOTHING = "nothing was written (every output is written whole, at the end)"
#: What an interrupt leaves, by command (others: nothing).
_AFTER_INTERRUPT = {
    "featurize": "the slides finished are kept (and indexed by the next run); rerun to resume",
    "export": "the files exported so far are whole; rerun to finish",
    "demo": "the files written so far are whole; rerun to finish",
}


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
    known = parameter_options(sub)
    try:
        with (
            warnings.catch_warnings(),
            _interrupts_stop_the_command(),
            _workers_show_warnings(prefix, known),
        ):
            _show_warnings(prefix, known)
            return command(args)
    except (CLIError, OSError, ValueError) as exc:
        print(f"{prefix}: error: {_cli_message(exc, known)}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Interrupted):
        print(
            f"{prefix}: interrupted; {_AFTER_INTERRUPT.get(args.command, _NOTHING)}.",
            file=sys.stderr,
        )
        return 130
    except Exception:
        traceback.print_exc()
        print(
            f"{prefix}: unexpected error (the traceback above): this is a bug in "
            "he2rna-sklearn, not in your input; please report it with that traceback.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
