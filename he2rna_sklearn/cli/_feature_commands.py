"""The subcommands that make or move a features folder: ``he2rna featurize``, ``he2rna
index`` (feature files of other tools) and ``he2rna export`` (to another tool's layout)."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..features import (
    INDEX_NAME,
    check_index_compatible,
    index_from_bags,
    read_index,
    read_manifest,
    update_index,
)
from ._command_io import _check_outputs, _echo, _note, _parameters
from ._inputs import CLIError

__all__ = ["cmd_export", "cmd_featurize", "cmd_index"]


# -- featurize ---------------------------------------------------------------------------
def cmd_featurize(args):
    from ..features import SlideFeaturizer

    if bool(args.slides) == bool(args.manifest):
        raise CLIError("Give slide files or --manifest CSV (one of the two).")
    manifest = read_manifest(args.manifest or args.slides)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out '{out}' is a file; featurize writes a folder.")
    _check_outputs((out / INDEX_NAME, "--out"), args=args)
    featurizer = SlideFeaturizer(
        **_parameters(args, SlideFeaturizer), cache_dir=out, lazy=True, progress=not args.quiet
    )
    featurizer.fit()  # parameter errors before any work
    if (out / INDEX_NAME).is_file():  # features of another kind: refused before any work
        runner = featurizer.build_runner()
        check_index_compatible(
            out,
            {
                "backbone": runner.backbone.name,
                "weights": runner.backbone.weights_id,
                "tile_size": featurizer.tile_size,
                "mpp": featurizer.feature_spec().mpp,
            },
        )
        del runner
    bags = featurizer.fit_transform(list(manifest["slide_path"]))
    first = next((b for b in bags if b is not None), None)
    # merged into the index on disk now (under a lock): runs into one --out add up
    index, n_before = update_index(
        out, index_from_bags(manifest, bags, out), None if first is None else first.meta
    )
    kept = len(index) - len(manifest)
    if kept:
        _echo(args, f"{kept} of the {n_before} slides already in {out / INDEX_NAME} kept.")
    failed = getattr(featurizer, "failed_slides_", {})
    if first is not None:
        _echo(
            args,
            f"Backbone {first.meta['backbone']}, weights {first.meta['weights']}, "
            f"{first.meta['precision']}; tiles of {args.tile_size} px at "
            f"{first.meta['mpp']:.3g} µm/px.",
        )
    n_tiles = sum(b.n_tiles for b in bags if b is not None)
    _echo(
        args,
        f"Featurized {len(bags) - len(failed)} of {len(bags)} slides "
        f"({n_tiles} tiles) into {out}/; index: {out / INDEX_NAME} ({len(index)} slides)",
    )
    empty = [s for s, b in zip(manifest["sample_id"], bags) if b is not None and not b.n_tiles]
    if empty:
        _note(args, f"no tissue tiles in {len(empty)} slides: {empty[:10]}")
    for path, error in failed.items():
        print(f"  skipped {path}: {error}")
    return 1 if failed and args.on_error == "skip" and len(failed) == len(bags) else 0


# -- index -------------------------------------------------------------------------------
def cmd_index(args):
    """Index feature files made by other tools, for fit/evaluate/predict/heatmap."""
    import argparse

    from ..features import build_index

    out = Path(args.out) if args.out else Path(args.features) / INDEX_NAME
    if out.is_dir() or not out.suffix:
        out = out / INDEX_NAME
    _check_outputs((out, "--out"), args=argparse.Namespace(manifest=args.manifest))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = build_index(
            args.features,
            args.manifest,
            out=out,
            on_missing=args.on_missing,
            slide_mpp=args.slide_mpp,
        )
    for w in caught:
        warnings.warn(str(w.message), w.category, stacklevel=1)  # shown the CLI's way
    _echo(
        args,
        f"Indexed {len(index)} slides ({index['patient_id'].nunique()} patients, "
        f"{int(index['n_tiles'].sum())} tiles of {int(index['n_features'].max())} features): "
        f"{out}",
    )
    return 0


# -- export ------------------------------------------------------------------------------
def cmd_export(args):
    """Write a features folder in the layout of TRIDENT, CLAM or STAMP."""
    from ..features import export_features

    try:
        written = export_features(
            args.features, args.out, args.layout, slide_mpp=getattr(args, "slide_mpp", None)
        )
    except ValueError as exc:
        message = str(exc).replace(
            "(slide_mpp=...)", "(--slide-mpp, or 'he2rna index --slide-mpp')"
        )
        raise CLIError(message) from None
    index = read_index(args.features)
    left = len(index) - len(written)
    note = f"; {left} slides without tiles left out, as STAMP does" if left else ""
    first = Path(written["path"].iloc[0]).parent if len(written) else Path(args.out)
    _echo(
        args,
        f"Exported {len(written)} slides in {args.layout.upper()}'s layout into {args.out}/ "
        f"(feature files in {first}/){note}.",
    )
    return 0
