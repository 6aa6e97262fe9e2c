"""What the ``he2rna`` subcommands share: results and warnings printed, the parameters set
on the command line, every output checked before any work (and never one of the command's
inputs), tables written atomically, and the bags of a feature index read and checked
against it."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pandas as pd

from .._io import atomic_write, check_output_path
from ..features import INDEX_NAME, read_index
from ._inputs import CLIError, check_bags_match_index


def _echo(args, text):
    """Report a result (``--quiet`` silences progress bars, not results)."""
    print(text)


def _note(args, text):
    """A warning line on stderr (the results stay on stdout)."""
    print(f"he2rna {args.command}: warning: {text}", file=sys.stderr)


def _atomic_csv(table, path, **kwargs):
    with atomic_write(path) as tmp:
        table.to_csv(tmp, **kwargs)
    return Path(path)


def _parameters(args, estimator):
    """The parameters of ``estimator`` set on the command line (each option is stored
    under the name of the parameter it sets)."""
    names = estimator().get_params()
    return {k: v for k, v in vars(args).items() if k in names}


def _same_file(a, b):
    try:
        return os.path.realpath(a) == os.path.realpath(b) or os.path.samefile(a, b)
    except OSError:
        return False


def _inputs(args):
    """The files a command reads (named by option), so that no output overwrites one."""
    found = []
    for option in ("manifest", "expression", "model", "slide_path"):
        value = getattr(args, option, None)
        if value:
            found.append((value, f"--{option.replace('_', '-')}"))
    for value in getattr(args, "slides", None) or []:
        found.append((value, "a slide"))
    features = getattr(args, "features", None)
    if features:
        index = Path(features) / INDEX_NAME if Path(features).is_dir() else Path(features)
        found.append((index, "--features (its index)"))
        try:
            table = read_index(index, raw=True)
        except (OSError, ValueError):  # reported where the index is read
            table = pd.DataFrame()
        for column, what in (("feature_file", "a feature file"), ("slide_path", "a slide")):
            for value in table.get(column, []):
                if value:
                    found.append((Path(index).parent / value, f"{what} of --features"))
    return found


def _check_outputs(*paths, args=None):
    """Check every output file before any work (a failure then loses nothing), and that
    none of them is one of the command's inputs."""
    inputs = [p for p in (_inputs(args) if args is not None else []) if Path(p[0]).is_file()]
    for path, option in paths:
        try:
            check_output_path(path, option)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        if not Path(path).is_file():
            continue
        for source, what in inputs:
            if _same_file(path, source):
                raise CLIError(
                    f"{option} '{path}' is {what} this command reads ('{source}'): writing "
                    "it would overwrite that input. Give another file name."
                )


# -- the bags of an index -----------------------------------------------------------------
def _slide_mpps(args, index, slide_mpp=None):
    """Level-0 µm per pixel by feature file: ``slide_mpp`` (or ``--slide-mpp``) for all,
    else the index's ``slide_mpp`` column (``he2rna index --slide-mpp``); None if neither."""
    given = slide_mpp if slide_mpp is not None else getattr(args, "slide_mpp", None)
    column = index["slide_mpp"] if "slide_mpp" in index else [""] * len(index)
    by_file = {}
    for f, value in zip(index["feature_file"], column):
        if given is not None:
            by_file[os.fspath(f)] = float(given)
        elif str(value).strip() and str(value) != "nan":
            by_file[os.fspath(f)] = float(value)
    return by_file or None


def _load_bags(args, index, source, slide_mpp=None):
    """The index's bags (lazy, checksums verified), checked against its rows. Coordinates
    in µm (STAMP) stay so without a slide µm/px: they serve super-tiles as well, and the
    commands that place tiles on a slide (heatmap) resolve them."""
    from .. import load_bags

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".* in µm", category=UserWarning)
        bags = load_bags(
            list(index["feature_file"]),
            lazy=True,
            verify=True,
            slide_mpp=_slide_mpps(args, index, slide_mpp),
        )
    check_bags_match_index(index, bags, source)
    return bags


def _without_empty(args, index, bags, what):
    """Drop the slides without tissue tiles, naming them."""
    keep = [b.n_tiles > 0 for b in bags]
    if all(keep):
        return index, bags
    empty = index.loc[[not k for k in keep], "sample_id"].tolist()
    _note(args, f"{len(empty)} slides have no tissue tiles and are left out of {what}: {empty}")
    if not any(keep):
        raise CLIError(f"No slide of '{args.features}' has tissue tiles.")
    return index[keep].reset_index(drop=True), [b for b, k in zip(bags, keep) if k]
