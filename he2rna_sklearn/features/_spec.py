"""The featurization spec: one frozen record of everything that changes a slide's features.

:class:`FeatureSpec` holds what the user asked for (resolution, tiling, tissue masks, tile
transform); :meth:`FeatureSpec.for_slide` resolves it for one slide and one backbone
runner into a :class:`SlideSpec`. The cache file name (:meth:`SlideSpec.key`) and the
HDF5 attributes (:meth:`SlideSpec.attrs`) are both derived from the ``SlideSpec``'s
fields, so a new field changes both, and a cached file is served only when the spec
stored in it equals the one asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..slides import (
    AUTO_TISSUE_MASK,
    AUTO_TISSUE_MASK_PEN_MARKS_KEPT,
    GEOJSON_SUFFIXES,
    SlideReader,
    geojson_tissue_mask,
    lookup_by_slide,
    lookup_slide_mpp,
)
from ._store import FORMAT_VERSION

__all__ = ["FeatureSpec", "SlideSpec", "cache_file_name"]

#: The longest cache file name, in bytes, written as it is. A file system allows 255 bytes,
#: and the temporary that ``_io.atomic_write`` builds first adds 63 at most (a dot, the
#: process id, host name and a random tag): names up to 192 bytes work on every host.
MAX_CACHE_NAME_BYTES = 255 - 63


def cache_file_name(slide_id, key):
    """The cache file name of a slide: ``<slide_id>.<key>.h5``.

    A name longer than :data:`MAX_CACHE_NAME_BYTES` (it could not be written) keeps the
    start of the slide id that fits: the key digests the whole spec, slide id included, so
    shortened names stay unique and stable, and names that work are never changed (that
    would orphan existing caches).
    """
    name = f"{slide_id}.{key}.h5"
    if len(name.encode()) <= MAX_CACHE_NAME_BYTES:
        return name
    room = MAX_CACHE_NAME_BYTES - len(f".{key}.h5".encode())
    stem = os.fsencode(slide_id)[:room].decode("utf-8", "ignore")
    return f"{stem}.{key}.h5"


@dataclass(frozen=True)
class SlideSpec:
    """Everything that changes one slide's features, resolved (plain values only).

    Attributes
    ----------
    slide_id : str
        The slide file's stem.
    slide_fingerprint : str or None
        SHA-256 of the slide file's content (None when features are not cached).
    slide_mpp : float or None
        Base resolution given by the user (None: the slide's own metadata).
    tissue_mask : str or None
        Digest of a user tissue mask, or the automatic detection's name
        (``slides.AUTO_TISSUE_MASK``, or ``slides.AUTO_TISSUE_MASK_PEN_MARKS_KEPT`` with
        ``exclude_pen_marks=False``; None in files written before it existed).
    mpp, tile_size, max_tiles, min_tissue_fraction, random_state
        The tiling asked for.
    tile_transform : str or None
        Digest of the tile transform (e.g. a stain normaliser).
    backbone, weights, precision : str
        The network, its weights and its numeric precision.
    format_version : int
        The feature-file layout.
    input_transform : str or None
        The encoder card's resize and crop between tile and network (e.g.
        ``"resize=448:bilinear,center_crop=448"``); None, and absent from the JSON (so
        that keys written before it existed stay), when tiles go to the network as read.
    """

    slide_id: str
    slide_fingerprint: str | None
    slide_mpp: float | None
    tissue_mask: str | None
    mpp: float
    tile_size: int
    max_tiles: int | None
    min_tissue_fraction: float
    random_state: int
    tile_transform: str | None
    backbone: str
    weights: str
    precision: str
    format_version: int = FORMAT_VERSION
    input_transform: str | None = None

    def to_json(self):
        values = dataclasses.asdict(self)
        if values["input_transform"] is None:
            del values["input_transform"]
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """The spec stored in a feature file (``attrs["spec"]``); None if absent or stale."""
        try:
            values = json.loads(text)
            return cls(**values)
        except (TypeError, ValueError):
            return None

    def key(self):
        """A short digest of every field: the cache file's name."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:16]

    def cache_path(self, cache_dir, slide_path):
        return Path(cache_dir) / cache_file_name(Path(slide_path).stem, self.key())

    def attrs(self):
        """HDF5 attributes: the whole spec (``spec``, ``spec_key``) and its readable fields."""
        readable = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if v is not None and k not in ("mpp", "slide_mpp", "format_version")
        }
        return {**readable, "spec": self.to_json(), "spec_key": self.key()}


def _mask_digest(mask):
    return hashlib.sha1(np.packbits(mask)).hexdigest() + str(mask.shape)


def _transform_digest(transform):
    if transform is None:
        return None
    try:
        return hashlib.sha1(pickle.dumps(transform)).hexdigest()[:16]
    except Exception:
        return repr(transform)


def _input_transform(backbone):
    transform = getattr(backbone, "input_transform", None)
    return None if transform is None else repr(transform)


@dataclass(frozen=True, eq=False)
class FeatureSpec:
    """What the user asked for, for a cohort: resolved per slide by :meth:`for_slide`.

    Parameters are those of :class:`~he2rna_sklearn.SlideFeaturizer` that change features
    (``mpp`` is the resolved tile resolution in µm/px).
    """

    mpp: float
    tile_size: int
    max_tiles: int | None
    min_tissue_fraction: float
    random_state: int
    slide_mpp: float | Mapping | None = None
    tissue_masks: Mapping | None = None
    tile_transform: Callable | None = None
    exclude_pen_marks: bool = True

    def slide_mpp_for(self, path):
        return lookup_slide_mpp(self.slide_mpp, path)

    def tissue_mask_for(self, path):
        """The user tissue mask of a slide as a 2-D boolean array, or None."""
        mask = lookup_by_slide(self.tissue_masks, path)
        if mask is None:
            return None
        if isinstance(mask, (str, os.PathLike)):
            from PIL import Image

            if not Path(mask).is_file():
                raise FileNotFoundError(f"Tissue mask of slide '{path}' not found: '{mask}'.")
            if Path(mask).suffix.lower() in GEOJSON_SUFFIXES:
                with SlideReader(path, self.slide_mpp_for(path)) as reader:
                    return geojson_tissue_mask(mask, reader.dimensions)
            with Image.open(mask) as im:
                mask = np.asarray(im.convert("L")) > 0
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise ValueError(f"The tissue mask of slide '{path}' must be 2-D, got {mask.shape}.")
        return mask

    def for_slide(self, path, runner, *, fingerprint=None, mask=None):
        """The :class:`SlideSpec` of one slide featurized by ``runner``."""
        slide_mpp = self.slide_mpp_for(path)
        auto = AUTO_TISSUE_MASK if self.exclude_pen_marks else AUTO_TISSUE_MASK_PEN_MARKS_KEPT
        return SlideSpec(
            slide_id=Path(path).stem,
            slide_fingerprint=fingerprint,
            slide_mpp=slide_mpp,
            tissue_mask=auto if mask is None else _mask_digest(mask),
            mpp=float(self.mpp),
            tile_size=int(self.tile_size),
            max_tiles=None if self.max_tiles is None else int(self.max_tiles),
            min_tissue_fraction=float(self.min_tissue_fraction),
            random_state=int(self.random_state),
            tile_transform=_transform_digest(self.tile_transform),
            backbone=runner.backbone.name,
            weights=runner.backbone.weights_id,
            precision=runner.precision,
            input_transform=_input_transform(runner.backbone),
        )
