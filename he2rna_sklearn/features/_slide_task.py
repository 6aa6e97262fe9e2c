"""One slide's featurization: the task :class:`~._featurizer.SlideFeaturizer` runs per slide,
in its own process or in a joblib worker.

:func:`featurize_slide` is a plain function of the spec, the slide and the backbone runner:
it serves a sound cached file written for the same :class:`~._spec.SlideSpec`, or tiles
the slide, runs the backbone and streams the features into a new file (atomically).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from .._parallel import exit_with_parent
from .._version import __version__
from ..bags import Bag
from ..slides import (
    SlideReader,
    check_slide_file,
    plan_geometry,
    select_tissue_tiles,
    slide_fingerprint,
)
from ._extract import FeatureRunner, TileDataset, extract_features
from ._spec import SlideSpec
from ._store import BagWriter, read_bag

__all__ = ["DIGESTS_DIR", "featurize_slide", "featurize_task"]

#: Hidden folder of the cache where slide fingerprints are remembered.
DIGESTS_DIR = ".slide-digests"


def _read_cached(cache, spec, path, lazy):
    """The cached bag of a slide if the file is sound and was written for this spec;
    otherwise None, with a warning saying why it is recomputed."""
    try:
        bag = read_bag(cache, lazy=lazy, verify=True)
    except (OSError, ValueError) as exc:
        warnings.warn(
            f"Feature file '{cache}' of slide '{path}' cannot be used ({exc}); recomputing it.",
            stacklevel=2,
        )
        return None
    stored = SlideSpec.from_json(bag.meta.get("spec", ""))
    if stored != spec:
        if stored is None:
            what = "carries no featurization spec"
        elif stored.slide_fingerprint != spec.slide_fingerprint:
            what = (
                f"holds the features of another slide ({stored.slide_id}, "
                f"{stored.slide_fingerprint}) than '{path}' ({spec.slide_fingerprint})"
            )
        else:
            diff = [
                f.name
                for f in dataclasses.fields(SlideSpec)
                if getattr(stored, f.name) != getattr(spec, f.name)
            ]
            what = f"was written with other settings ({', '.join(diff)})"
        warnings.warn(f"Feature file '{cache}' {what}; recomputing it.", stacklevel=2)
        return None
    return bag


def featurize_slide(
    spec,
    path,
    runner,
    *,
    cache_dir=None,
    lazy=False,
    batch_size=64,
    num_workers=0,
    on_empty="warn",
    progress=False,
):
    """Featurize one slide: a plain function of the spec, the slide and the runner.

    Parameters
    ----------
    spec : FeatureSpec
    path : str or Path
    runner : FeatureRunner
    cache_dir : str or Path, optional
        With a cache, a sound file written for the same :class:`SlideSpec` is reused;
        a missing, unreadable, altered or foreign one is (re)computed and written
        atomically.
    lazy, batch_size, num_workers, on_empty, progress
        As in :class:`SlideFeaturizer`.

    Returns
    -------
    bag : Bag
    """
    check_slide_file(path)
    slide_mpp = spec.slide_mpp_for(path)
    mask = spec.tissue_mask_for(path)
    fingerprint = None
    if cache_dir is not None:
        fingerprint = slide_fingerprint(path, memo_dir=Path(cache_dir) / DIGESTS_DIR)
    slide_spec = spec.for_slide(path, runner, fingerprint=fingerprint, mask=mask)
    cache = None if cache_dir is None else slide_spec.cache_path(cache_dir, path)
    if cache is not None and cache.exists():
        bag = _read_cached(cache, slide_spec, path, lazy)
        if bag is not None:
            return bag
    with SlideReader(path, slide_mpp) as reader:
        geometry = plan_geometry(reader, spec.mpp, spec.tile_size)
        seed = check_random_state(spec.random_state).randint(2**31 - 1)
        coords, _, _ = select_tissue_tiles(
            reader,
            geometry,
            min_tissue_fraction=spec.min_tissue_fraction,
            max_tiles=spec.max_tiles,
            random_state=seed,
            mask=mask,
            exclude_pen_marks=spec.exclude_pen_marks,
        )
        base_mpp = reader.mpp
    slide_id = slide_spec.slide_id
    if len(coords) == 0:
        message = (
            f"No tissue tiles found in slide '{path}' (min_tissue_fraction="
            f"{spec.min_tissue_fraction})"
        )
        if on_empty == "raise":
            raise ValueError(message + ". Lower min_tissue_fraction or give a tissue mask.")
        warnings.warn(message + "; its bag is empty.", stacklevel=2)
    dataset = TileDataset(path, slide_mpp, coords, geometry, transform=spec.tile_transform)
    meta = {
        **slide_spec.attrs(),
        "slide_path": os.fspath(path),
        "mpp": geometry.mpp,
        "slide_mpp": base_mpp,
        "extent": geometry.extent,
        "level": geometry.level,
        "read_size": geometry.read_size,
        "package_version": __version__,
    }
    extract = dict(batch_size=batch_size, num_workers=num_workers)
    with tqdm(
        total=len(coords), desc=slide_id, unit="tile", leave=False, disable=not progress
    ) as bar:
        if cache is None:
            features = extract_features(dataset, runner, progress=bar, **extract)
            return Bag(
                features,
                coords=np.asarray(coords, dtype=np.int64),
                slide_id=slide_id,
                meta=meta,
            )
        n_features = runner.n_features(geometry.tile_size)
        with BagWriter(cache, len(coords), n_features, coords, attrs=meta) as writer:
            extract_features(dataset, runner, progress=bar, out=writer, **extract)
    return read_bag(cache, lazy=lazy, verify=False)


_RUNNERS = {}


def _runner_for(source):
    """A runner built from a featurizer (``source``), reused by a worker for later slides."""
    key = None
    if isinstance(source.backbone, str):
        key = (
            source.backbone,
            str(source.weights),
            source.random_state,
            str(source.device),
            source.precision,
        )
    runner = _RUNNERS.get(key) if key else None
    if runner is None:
        runner = source.build_runner()
        if key:
            _RUNNERS.clear()
            _RUNNERS[key] = runner
    return runner


def featurize_task(spec, path, options, runner, *, parent_pid=None):
    """Featurize one slide; returns ``(bag, None, warnings)`` or, with ``on_error="skip"``
    in ``options``, ``(None, message, warnings)``. Runs in the caller (``runner`` is a
    FeatureRunner) or in a joblib worker (``runner`` is the featurizer to build one from,
    once per worker). Warnings are returned so that the caller shows them even when they
    were raised in another process."""
    exit_with_parent(parent_pid)
    options = dict(options)
    on_error = options.pop("on_error", "raise")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if not isinstance(runner, FeatureRunner):
                runner = _runner_for(runner)
            bag, error = featurize_slide(spec, path, runner, **options), None
        except Exception as exc:
            if on_error == "raise":
                raise
            bag, error = None, f"{type(exc).__name__}: {exc}"
    return bag, error, [str(w.message) for w in caught]
