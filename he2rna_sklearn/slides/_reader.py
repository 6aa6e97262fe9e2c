"""Open whole-slide images with OpenSlide and read tiles at a physical resolution."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import openslide
from PIL import Image, UnidentifiedImageError

from ..exceptions import MissingMPPError, SlideReadError

__all__ = [
    "SlideReader",
    "check_slide_file",
    "lookup_by_slide",
    "lookup_slide_mpp",
    "slide_fingerprint",
]


def lookup_by_slide(mapping, path):
    """The value of ``mapping`` for a slide, keyed by its path, file name or stem."""
    if mapping is None:
        return None
    p = Path(path)
    for key in (os.fspath(path), str(p), os.path.realpath(p), p.name, p.stem):
        if key in mapping:
            return mapping[key]
    return None


def lookup_slide_mpp(slide_mpp, path):
    """Return the user-given base resolution for ``path``, or None.

    ``slide_mpp`` is None, a number (one value for every slide) or a mapping whose keys
    are a slide's path, file name or file stem.
    """
    if slide_mpp is None:
        return None
    if isinstance(slide_mpp, Mapping):
        value = lookup_by_slide(slide_mpp, path)
        return None if value is None else float(value)
    return float(slide_mpp)


def check_slide_file(path):
    """Raise a clear error unless ``path`` is an existing file (not a folder)."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        raise IsADirectoryError(
            f"Slide '{p}' is a directory, not a slide file. Pass the slide file itself (for "
            "MRXS the .mrxs file beside its folder; for a DICOM series one of its .dcm files)."
        )
    raise FileNotFoundError(f"Slide file not found: '{p}'.")


def _stamp(stat):
    # ctime cannot be set by users: a file rewritten in place gets a new one even if its
    # mtime is restored afterwards.
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def slide_fingerprint(path, *, memo_dir=None, chunk=1 << 22):
    """The SHA-256 of a slide file's whole content, as ``"sha256:<hex>"``.

    Any change to the file, anywhere in it, changes the fingerprint. Hashing reads the
    whole file once (about 1 GB/s per core). With ``memo_dir``, the digest is remembered
    there (one small JSON file per slide) and reused while the file's size, mtime, ctime
    and inode are unchanged; a file rewritten in place always gets a new ctime, so it is
    hashed again even if its mtime was restored.

    Parameters
    ----------
    path : str or Path
    memo_dir : str or Path, optional
        Folder of the remembered digests (e.g. a hidden folder in the feature cache).
    """
    path = check_slide_file(path)
    real = os.path.realpath(path)
    stamp = _stamp(os.stat(path))
    memo = None
    if memo_dir is not None:
        name = hashlib.sha1(real.encode()).hexdigest()[:24]
        memo = Path(memo_dir) / f"{name}.json"
        try:
            saved = json.loads(memo.read_text())
            if saved["path"] == real and saved["stat"] == stamp:
                return str(saved["fingerprint"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    fingerprint = "sha256:" + h.hexdigest()
    if memo is not None and _stamp(os.stat(path)) == stamp:  # not changed while hashing
        from .._io import atomic_write

        try:
            record = {"path": real, "stat": stamp, "fingerprint": fingerprint}
            with atomic_write(memo) as tmp:
                tmp.write_text(json.dumps(record))
        except OSError:  # a read-only cache only costs a re-hash next time
            pass
    return fingerprint


class SlideReader:
    """A slide opened with OpenSlide, with its base resolution resolved.

    Parameters
    ----------
    path : str or Path
        A slide in any format OpenSlide reads (SVS, NDPI, MRXS, SCN, DICOM, tiled TIFF),
        or a plain image (PNG, JPEG, TIFF), for which ``slide_mpp`` is required.
    slide_mpp : float, optional
        Base resolution in micrometres per pixel. Overrides the slide's metadata; required
        when the slide has none.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (``IsADirectoryError`` if it is a folder).
    SlideReadError
        If OpenSlide cannot open the file.
    MissingMPPError
        If the slide has no resolution metadata and ``slide_mpp`` is None.
    """

    def __init__(self, path, slide_mpp=None):
        self.path = check_slide_file(path)
        try:
            self._slide = openslide.open_slide(os.fspath(self.path))
        except Image.DecompressionBombError as exc:
            raise SlideReadError(
                f"Cannot open slide '{self.path}': it is a plain image too large to decode "
                f"whole ({exc}). Convert it to a tiled pyramidal TIFF (e.g. with vips "
                "tiffsave --tile --pyramid, or he2rna_sklearn.datasets.write_pyramidal_tiff), "
                "which is read tile by tile."
            ) from None
        except (openslide.OpenSlideError, UnidentifiedImageError, OSError, ValueError) as exc:
            raise SlideReadError(
                f"Cannot open slide '{self.path}': {exc}. The file may be truncated or "
                "corrupt, or its format is not one OpenSlide supports (SVS, NDPI, MRXS, SCN, "
                "DICOM, tiled TIFF, or a plain PNG/JPEG/TIFF image)."
            ) from exc
        self.mpp = self._resolve_mpp(slide_mpp)

    # -- metadata ---------------------------------------------------------------------
    def _resolve_mpp(self, slide_mpp):
        props = self._slide.properties
        meta = None
        try:
            mx = float(props[openslide.PROPERTY_NAME_MPP_X])
            my = float(props.get(openslide.PROPERTY_NAME_MPP_Y, mx))
            if mx > 0 and my > 0:
                meta = (mx + my) / 2
        except (KeyError, ValueError):
            meta = None
        if slide_mpp is not None:
            if not slide_mpp > 0:
                raise ValueError(f"slide_mpp for '{self.path}' must be positive, got {slide_mpp}.")
            return float(slide_mpp)
        if meta is None:
            power = props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)
            hint = (
                f" It reports an objective power of {power}x, which is not a resolution "
                "(at 20x most scanners give about 0.5 µm/px); check your scanner's value."
                if power
                else ""
            )
            raise MissingMPPError(
                f"Slide '{self.path}' has no microns-per-pixel metadata.{hint} Pass its base "
                "resolution as slide_mpp=<µm per pixel> (a number, or a mapping from slide "
                "path, file name or stem to a number)."
            )
        return meta

    @property
    def dimensions(self):
        """Level-0 size as (width, height) in pixels."""
        return self._slide.dimensions

    @property
    def level_downsamples(self):
        return tuple(float(d) for d in self._slide.level_downsamples)

    @property
    def level_count(self):
        return self._slide.level_count

    @property
    def properties(self):
        return self._slide.properties

    def best_level(self, downsample):
        """The pyramid level whose downsample is the largest one not above ``downsample``."""
        level = self._slide.get_best_level_for_downsample(downsample)
        # OpenSlide may pick a level a hair above the request through rounding; step back.
        while level > 0 and self.level_downsamples[level] > downsample * (1 + 1e-6):
            level -= 1
        return level

    # -- pixels ----------------------------------------------------------------------
    def read_region(self, location, level, size):
        """RGB uint8 array of ``size`` (w, h) at ``level``; transparent areas become white."""
        try:
            region = self._slide.read_region(tuple(int(v) for v in location), level, size)
        except openslide.OpenSlideError as exc:
            raise SlideReadError(f"Cannot read a region of slide '{self.path}': {exc}") from exc
        if region.mode == "RGBA":
            alpha = np.asarray(region.getchannel("A"))
            if alpha.min() < 255:
                background = Image.new("RGBA", region.size, (255, 255, 255, 255))
                background.alpha_composite(region)
                region = background
            region = region.convert("RGB")
        return region

    def thumbnail(self, mpp):
        """An RGB thumbnail at about ``mpp`` µm/px and its exact (x, y) downsample."""
        w, h = self.dimensions
        scale = self.mpp / mpp
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        try:
            thumb = self._slide.get_thumbnail(size).convert("RGB")
        except openslide.OpenSlideError as exc:
            raise SlideReadError(f"Cannot read slide '{self.path}': {exc}") from exc
        arr = np.asarray(thumb)
        return arr, (w / arr.shape[1], h / arr.shape[0])

    def close(self):
        self._slide.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        w, h = self.dimensions
        return (
            f"SlideReader('{self.path}', {w}x{h} px, {self.mpp:.3f} µm/px, "
            f"{self.level_count} levels)"
        )
