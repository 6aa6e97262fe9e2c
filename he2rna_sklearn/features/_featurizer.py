"""SlideFeaturizer: slide files in, bags of tile features out."""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from tqdm.auto import tqdm

from .._version import __version__
from ..bags import Bag
from ..slides import (
    SlideReader,
    lookup_slide_mpp,
    plan_geometry,
    select_tissue_tiles,
    slide_fingerprint,
)
from ._backbones import build_backbone
from ._extract import FeatureRunner, TileDataset, extract_features
from ._store import FORMAT_VERSION, read_bag, write_bag

__all__ = ["SlideFeaturizer"]


class SlideFeaturizer(TransformerMixin, BaseEstimator):
    """Turn whole-slide images into bags of tile features.

    Each slide is opened with OpenSlide, tissue is found on a thumbnail, tissue tiles are
    laid on a grid at a physical resolution (``mpp``, not a pyramid level), and a CNN
    backbone maps every tile to a feature vector. With ``cache_dir``, each slide's bag is
    stored as one HDF5 file (``features``, ``coords`` and the tiling facts as attributes),
    keyed by the slide's content and every parameter that changes the features, so a rerun
    skips finished slides and a parameter change never reuses a stale file.

    Parameters
    ----------
    backbone : str or torch.nn.Module, default="resnet50"
        A torchvision or timm model name, or a module mapping (B, 3, H, W) to (B, D).
    weights : {"imagenet", None} or str, default="imagenet"
        ``"imagenet"`` (from torchvision's cache, or downloaded when online), a path to a
        state dict, or None for seeded random weights. Missing pretrained weights raise
        :class:`~he2rna_sklearn.exceptions.WeightsNotFoundError`; there is no fallback.
    mpp : float, default=0.5
        Tile resolution in µm per pixel (0.5 is about 20x, the paper's).
    tile_size : int, default=224
        Tile side in pixels at ``mpp``.
    max_tiles : int or None, default=8000
        At most this many tissue tiles per slide, drawn with ``random_state``.
    min_tissue_fraction : float, default=0.5
        A tile is kept when at least this fraction of it is tissue.
    batch_size : int, default=64
        Tiles per backbone batch.
    num_workers : int, default=0
        DataLoader worker processes that read tiles while the backbone runs.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        ``"auto"`` uses CUDA when present.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        ``"auto"`` is bf16 where the CPU or GPU runs it natively, else fp32.
    cache_dir : str or Path, optional
        Folder of the per-slide HDF5 feature files.
    slide_mpp : float or dict, optional
        Base resolution of slides lacking metadata (or overriding it): one number, or a
        mapping from slide path, file name or stem to a number.
    random_state : int, default=0
        Seeds tile subsampling and random backbone weights. Featurization is deterministic
        by default so that cached features can be reused.
    progress : bool, default=True
        Show progress bars per cohort and per slide.

    Examples
    --------
    >>> from he2rna_sklearn import SlideFeaturizer
    >>> feat = SlideFeaturizer(backbone="resnet18", weights=None, mpp=1.0, tile_size=112)
    >>> bags = feat.fit_transform(["slide-1.svs", "slide-2.svs"])  # doctest: +SKIP
    >>> bags[0].shape, bags[0].coords[:2]  # doctest: +SKIP
    """

    _parameter_constraints = {
        "backbone": [str, torch.nn.Module],
        "weights": [str, os.PathLike, None],
        "mpp": [Interval(numbers.Real, 0, None, closed="neither")],
        "tile_size": [Interval(numbers.Integral, 8, None, closed="left")],
        "max_tiles": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "min_tissue_fraction": [Interval(numbers.Real, 0, 1, closed="both")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "num_workers": [Interval(numbers.Integral, 0, None, closed="left")],
        "device": [str, torch.device],
        "precision": [StrOptions({"auto", "fp32", "bf16", "fp16"})],
        "cache_dir": [str, os.PathLike, None],
        "slide_mpp": [Interval(numbers.Real, 0, None, closed="neither"), dict, None],
        "random_state": [Interval(numbers.Integral, 0, None, closed="left")],
        "progress": ["boolean"],
    }

    def __init__(
        self,
        backbone="resnet50",
        weights="imagenet",
        mpp=0.5,
        tile_size=224,
        max_tiles=8000,
        min_tissue_fraction=0.5,
        batch_size=64,
        num_workers=0,
        device="auto",
        precision="auto",
        cache_dir=None,
        slide_mpp=None,
        random_state=0,
        progress=True,
    ):
        self.backbone = backbone
        self.weights = weights
        self.mpp = mpp
        self.tile_size = tile_size
        self.max_tiles = max_tiles
        self.min_tissue_fraction = min_tissue_fraction
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = device
        self.precision = precision
        self.cache_dir = cache_dir
        self.slide_mpp = slide_mpp
        self.random_state = random_state
        self.progress = progress

    def fit(self, X=None, y=None):
        """Check parameters. The featurizer learns nothing from data."""
        self._validate_params()
        return self

    def build_runner(self):
        """Build the backbone and the inference runner (device and precision resolved)."""
        backbone = build_backbone(
            self.backbone, self.weights, random_state=self.random_state, progress=self.progress
        )
        return FeatureRunner(backbone, device=self.device, precision=self.precision)

    def transform(self, X):
        """Featurize slides.

        Parameters
        ----------
        X : sequence of str or Path
            Slide files.

        Returns
        -------
        bags : list of Bag
            One bag per slide, in input order, with ``coords`` in level-0 pixels.
        """
        self._validate_params()
        paths = self._check_paths(X)
        runner = self.build_runner()
        bags = []
        bar = tqdm(paths, desc="Featurizing slides", unit="slide", disable=not self.progress)
        for path in bar:
            bar.set_postfix_str(Path(path).name)
            bags.append(self._featurize_one(path, runner))
        return bags

    # -- internals ----------------------------------------------------------------------
    @staticmethod
    def _check_paths(X):
        if isinstance(X, (str, os.PathLike)):
            raise TypeError(
                "X must be a list of slide paths; wrap a single path in a list: [path]."
            )
        paths = list(X)
        seen = set()
        for p in paths:
            if not isinstance(p, (str, os.PathLike)):
                raise TypeError(f"Slide paths must be str or Path, got {type(p).__name__}: {p!r}.")
            if not Path(p).is_file():
                raise FileNotFoundError(f"Slide file not found: '{p}'.")
            key = os.path.realpath(p)
            if key in seen:
                raise ValueError(f"Slide '{p}' is listed twice.")
            seen.add(key)
        return paths

    def _cache_path(self, path, runner, slide_mpp):
        if self.cache_dir is None:
            return None
        spec = {
            "format": FORMAT_VERSION,
            "slide": slide_fingerprint(path),
            "mpp": float(self.mpp),
            "tile_size": int(self.tile_size),
            "max_tiles": self.max_tiles,
            "min_tissue_fraction": float(self.min_tissue_fraction),
            "backbone": runner.backbone.name,
            "weights": runner.backbone.weights_id,
            "precision": runner.precision,
            "random_state": self.random_state,
            "slide_mpp": slide_mpp,
        }
        key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        return Path(self.cache_dir) / f"{Path(path).stem}.{key}.h5"

    def _featurize_one(self, path, runner):
        slide_mpp = lookup_slide_mpp(self.slide_mpp, path)
        cache = self._cache_path(path, runner, slide_mpp)
        if cache is not None and cache.is_file():
            return read_bag(cache)
        with SlideReader(path, slide_mpp) as reader:
            geometry = plan_geometry(reader, self.mpp, self.tile_size)
            seed = check_random_state(self.random_state).randint(2**31 - 1)
            coords, _, _ = select_tissue_tiles(
                reader,
                geometry,
                min_tissue_fraction=self.min_tissue_fraction,
                max_tiles=self.max_tiles,
                random_state=seed,
            )
            base_mpp = reader.mpp
        slide_id = Path(path).stem
        if len(coords) == 0:
            warnings.warn(
                f"No tissue tiles found in slide '{path}' (min_tissue_fraction="
                f"{self.min_tissue_fraction}); its bag is empty.",
                stacklevel=3,
            )
        dataset = TileDataset(path, slide_mpp, coords, geometry)
        with tqdm(
            total=len(coords), desc=slide_id, unit="tile", leave=False, disable=not self.progress
        ) as bar:
            features = extract_features(
                dataset,
                runner,
                batch_size=self.batch_size,
                num_workers=self.num_workers,
                progress=bar,
            )
        meta = {
            "slide_id": slide_id,
            "slide_path": os.fspath(path),
            "mpp": geometry.mpp,
            "slide_mpp": base_mpp,
            "tile_size": geometry.tile_size,
            "extent": geometry.extent,
            "level": geometry.level,
            "backbone": runner.backbone.name,
            "weights": runner.backbone.weights_id,
            "precision": runner.precision,
            "slide_fingerprint": slide_fingerprint(path),
            "package_version": __version__,
        }
        if cache is not None:
            write_bag(cache, features, coords, attrs=meta)
        return Bag(
            features, coords=np.asarray(coords, dtype=np.int64), slide_id=slide_id, meta=meta
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags
