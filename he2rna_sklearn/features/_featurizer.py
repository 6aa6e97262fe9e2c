"""SlideFeaturizer: slide files in, bags of tile features out.

The estimator checks its parameters, resolves them into a :class:`~._spec.FeatureSpec` and
runs one task per slide (:mod:`._slide_task`), in this process or with joblib.
"""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils._param_validation import Interval, StrOptions
from tqdm.auto import tqdm

from .._io import remove_stale_temporaries
from ._backbones import build_backbone
from ._encoders import Encoder
from ._extract import FeatureRunner
from ._slide_task import DIGESTS_DIR, featurize_task
from ._spec import FeatureSpec

__all__ = ["DEFAULT_MPP", "SlideFeaturizer"]

#: The tile resolution (µm per pixel) when neither ``mpp`` nor ``magnification`` is given:
#: about 20x, the paper's.
DEFAULT_MPP = 0.5


class SlideFeaturizer(TransformerMixin, BaseEstimator):
    """Turn whole-slide images into bags of tile features.

    Each slide is opened with OpenSlide, tissue is found on a thumbnail, tissue tiles are
    laid on a grid at a physical resolution (``mpp``, not a pyramid level), and a CNN
    backbone maps every tile to a feature vector. Tiles are read and decoded in DataLoader
    workers while the backbone runs. With ``cache_dir``, each slide's bag is stored as one
    HDF5 file (``features``, ``coords`` and the tiling facts as attributes), written
    atomically and keyed by the slide's content and every parameter that changes the
    features (:meth:`feature_spec`): a rerun skips finished slides, an interrupted run
    resumes, and a parameter change never reuses a stale file. A cached file is served
    only if its stored spec (slide fingerprint: the SHA-256 of the whole slide file)
    equals the one asked for and its datasets match their checksums; a truncated,
    altered or foreign file is recomputed, with a warning. Temporary files left by
    killed runs are removed by the next one.

    Parameters
    ----------
    backbone : str, Encoder or torch.nn.Module, default="resnet50"
        A registered pathology encoder (``"uni"``, ``"virchow2"``, ``"hf-hub:MahmoodLab/UNI"``
        ...; see :func:`~he2rna_sklearn.features.list_encoders`), a torchvision or timm model
        name, or a module mapping (B, 3, H, W) to features (wrapped in
        :class:`~he2rna_sklearn.features.TileEncoder` to state its normalisation and pooling).
        A module of yours is left as it is: where the device or precision needs it moved
        or cast (bf16 on the CPU), or it is in training mode, a copy runs.
    weights : {"imagenet", "pretrained", None} or str, default="imagenet"
        ``"imagenet"`` (from torchvision's cache, or downloaded when online),
        ``"pretrained"`` (a registered encoder's published weights, from the Hugging Face
        cache, offline), a path to a checkpoint, or None for seeded random weights. Missing
        pretrained weights raise :class:`~he2rna_sklearn.exceptions.WeightsNotFoundError`;
        there is no fallback.
    mpp : float, optional
        Tile resolution in µm per pixel. Default 0.5 (about 20x, the paper's).
    magnification : float, optional
        Alternative to ``mpp``: an objective magnification, converted as
        ``mpp = 10 / magnification`` (20x is 0.5 µm/px). Give one of the two.
    tile_size : int, default=224
        Tile side in pixels at ``mpp``.
    max_tiles : int or None, default=8000
        At most this many tissue tiles per slide, drawn with ``random_state``; the kept
        tiles stay in row-major order.
    min_tissue_fraction : float, default=0.5
        A tile is kept when at least this fraction of it is tissue.
    tissue_masks : dict, optional
        User tissue masks replacing automatic detection, keyed by slide path, file name or
        stem: a 2-D boolean array covering the whole slide (any resolution), the path of
        a mask image (non-zero is tissue), or a GeoJSON file of tissue polygons in level-0
        pixels (QuPath, GrandQC, TRIDENT; see
        :func:`~he2rna_sklearn.slides.geojson_tissue_mask`).
    exclude_pen_marks : bool, default=True
        Whether the automatic tissue detection leaves out blue, green and black pen marks
        (see :func:`~he2rna_sklearn.slides.tissue_mask`). Set it to False to keep them, e.g.
        for stains other than H&E (blue-counterstained IHC), where the ink rules can take
        stained tissue for ink. Features cached with one setting are never served for the
        other. Slides with a mask in ``tissue_masks`` are not affected.
    tile_transform : callable, optional
        Applied to every (h, w, 3) uint8 tile before the backbone, in the reading
        workers, e.g. :class:`~he2rna_sklearn.features.ReinhardNormalizer`. Must be
        picklable when ``num_workers > 0``.
    batch_size : int, default=64
        Tiles per backbone batch.
    num_workers : int, default=0
        DataLoader worker processes that read tiles while the backbone runs.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        ``"auto"`` uses CUDA when present.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        ``"auto"`` is bf16 where the CPU (AVX512-BF16/AMX) or GPU runs it natively, else
        fp32. On the CPU, bf16 also uses the channels-last layout.
    cache_dir : str or Path, optional
        Folder of the per-slide HDF5 feature files. Features are streamed to the file
        batch by batch.
    lazy : bool, default=False
        Return bags whose features stay in the cache files and are read when used (needs
        ``cache_dir``): memory stays flat whatever the number of tiles and slides.
    slide_mpp : float or dict, optional
        Base resolution of slides lacking metadata (or overriding it): one number, or a
        mapping from slide path, file name or stem to a number.
    on_error : {"raise", "skip"}, default="raise"
        What a slide that cannot be featurized (corrupt, unsupported, no resolution)
        does: raise an error naming the file, or be skipped: its entry in the output is
        None, the failure is recorded in ``failed_slides_`` and the other slides complete.
    on_empty : {"warn", "raise"}, default="warn"
        A slide without tissue tiles gives a warning and an empty bag, or an error.
    n_jobs : int, optional
        Slides featurized in parallel with joblib, one task per slide (each task writes
        its own HDF5 file atomically; results come back in input order). Under
        ``joblib.parallel_config(backend="dask")`` the tasks run on a Dask cluster.
        None or 1 featurizes in this process.
    random_state : int, default=0
        Seeds tile subsampling and random backbone weights. Featurization is deterministic
        by default so that cached features can be reused.
    progress : bool, default=True
        Show progress bars per cohort and per slide.

    Attributes
    ----------
    failed_slides_ : dict
        Set by ``transform``: slide path to error message, for the slides skipped with
        ``on_error="skip"``.

    Examples
    --------
    >>> from he2rna_sklearn import SlideFeaturizer
    >>> feat = SlideFeaturizer(backbone="resnet18", weights=None, mpp=1.0, tile_size=112)
    >>> bags = feat.fit_transform(["slide-1.svs", "slide-2.svs"])  # doctest: +SKIP
    >>> bags[0].shape, bags[0].coords[:2]  # doctest: +SKIP
    """

    _parameter_constraints = {
        "backbone": [str, torch.nn.Module, Encoder],
        "weights": [str, os.PathLike, None],
        "mpp": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "magnification": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "tile_size": [Interval(numbers.Integral, 8, None, closed="left")],
        "max_tiles": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "min_tissue_fraction": [Interval(numbers.Real, 0, 1, closed="both")],
        "tissue_masks": [Mapping, None],
        "exclude_pen_marks": ["boolean"],
        "tile_transform": [callable, None],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "num_workers": [Interval(numbers.Integral, 0, None, closed="left")],
        "device": [str, torch.device],
        "precision": [StrOptions({"auto", "fp32", "bf16", "fp16"})],
        "cache_dir": [str, os.PathLike, None],
        "lazy": ["boolean"],
        "slide_mpp": [Interval(numbers.Real, 0, None, closed="neither"), Mapping, None],
        "on_error": [StrOptions({"raise", "skip"})],
        "on_empty": [StrOptions({"warn", "raise"})],
        "n_jobs": [
            Interval(numbers.Integral, None, -1, closed="right"),
            Interval(numbers.Integral, 1, None, closed="left"),
            None,
        ],
        "random_state": [Interval(numbers.Integral, 0, None, closed="left")],
        "progress": ["boolean"],
    }

    def __init__(
        self,
        backbone="resnet50",
        weights="imagenet",
        mpp=None,
        magnification=None,
        tile_size=224,
        max_tiles=8000,
        min_tissue_fraction=0.5,
        tissue_masks=None,
        exclude_pen_marks=True,
        tile_transform=None,
        batch_size=64,
        num_workers=0,
        device="auto",
        precision="auto",
        cache_dir=None,
        lazy=False,
        slide_mpp=None,
        on_error="raise",
        on_empty="warn",
        n_jobs=None,
        random_state=0,
        progress=True,
    ):
        self.backbone = backbone
        self.weights = weights
        self.mpp = mpp
        self.magnification = magnification
        self.tile_size = tile_size
        self.max_tiles = max_tiles
        self.min_tissue_fraction = min_tissue_fraction
        self.tissue_masks = tissue_masks
        self.exclude_pen_marks = exclude_pen_marks
        self.tile_transform = tile_transform
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = device
        self.precision = precision
        self.cache_dir = cache_dir
        self.lazy = lazy
        self.slide_mpp = slide_mpp
        self.on_error = on_error
        self.on_empty = on_empty
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

    def fit(self, X=None, y=None):
        """Check parameters. The featurizer learns nothing from data."""
        self._validate_params()
        self._target_mpp()
        return self

    def _target_mpp(self):
        if self.mpp is not None and self.magnification is not None:
            raise ValueError(
                f"Give mpp or magnification, not both (got mpp={self.mpp}, "
                f"magnification={self.magnification})."
            )
        if self.lazy and self.cache_dir is None:
            raise ValueError("lazy=True keeps features in the cache files: set cache_dir too.")
        if self.magnification is not None:
            return 10.0 / float(self.magnification)
        return DEFAULT_MPP if self.mpp is None else float(self.mpp)

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
            One bag per slide, in input order, with ``coords`` in level-0 pixels. With
            ``on_error="skip"``, a slide that failed is None.
        """
        self._validate_params()
        spec = self.feature_spec()
        paths = self._check_paths(X)
        if self.cache_dir is not None:
            remove_stale_temporaries(self.cache_dir)
            remove_stale_temporaries(Path(self.cache_dir) / DIGESTS_DIR)
        self.failed_slides_ = {}
        options = self._run_options()
        bags = []
        bar = tqdm(
            total=len(paths), desc="Featurizing slides", unit="slide", disable=not self.progress
        )
        if self.n_jobs in (None, 1):
            runner = self.build_runner()
            results = (featurize_task(spec, path, options, runner) for path in paths)
        else:
            from joblib import Parallel, delayed

            source = clone(self).set_params(n_jobs=None, progress=False)
            options["progress"] = False
            results = Parallel(n_jobs=self.n_jobs, return_as="generator")(
                delayed(featurize_task)(spec, path, options, source, parent_pid=os.getpid())
                for path in paths
            )
        with bar:  # closed on an error too, so that a message starts on a line of its own
            for path, (bag, error, notes) in zip(paths, results):
                for message in notes:  # warnings of the task (also those raised in workers)
                    warnings.warn(message, UserWarning, stacklevel=2)
                bar.set_postfix_str(Path(path).name)
                bar.update()
                if error is not None:
                    self.failed_slides_[os.fspath(path)] = error
                bags.append(bag)
        if self.failed_slides_:
            warnings.warn(
                f"{len(self.failed_slides_)} of {len(paths)} slides failed and were skipped "
                f"(None in the output); see failed_slides_: {list(self.failed_slides_)[:5]}",
                stacklevel=2,
            )
        return bags

    # -- internals ----------------------------------------------------------------------
    def feature_spec(self):
        """The :class:`FeatureSpec` of these parameters: what changes a slide's features."""
        return FeatureSpec(
            mpp=self._target_mpp(),
            tile_size=self.tile_size,
            max_tiles=self.max_tiles,
            min_tissue_fraction=self.min_tissue_fraction,
            random_state=self.random_state,
            slide_mpp=self.slide_mpp,
            tissue_masks=self.tissue_masks,
            tile_transform=self.tile_transform,
            exclude_pen_marks=self.exclude_pen_marks,
        )

    def _run_options(self):
        return dict(
            cache_dir=self.cache_dir,
            lazy=self.lazy,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            on_empty=self.on_empty,
            on_error=self.on_error,
            progress=self.progress,
        )

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
            key = os.path.realpath(p)
            if key in seen:
                raise ValueError(f"Slide '{p}' is listed twice.")
            seen.add(key)
        return paths

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags
