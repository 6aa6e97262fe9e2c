"""Tissue detection on a slide thumbnail."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["AUTO_TISSUE_MASK", "AUTO_TISSUE_MASK_PEN_MARKS_KEPT", "otsu_threshold", "tissue_mask"]

#: The automatic tissue detection (:func:`tissue_mask` at its defaults), as feature specs
#: record it: change it whenever those defaults change, so that features cached with
#: another automatic mask are computed again instead of served.
AUTO_TISSUE_MASK = "auto:saturation-otsu,pen-marks-excluded"

#: The automatic tissue detection with pen marks kept (``exclude_pen_marks=False``), as
#: feature specs record it (change it as :data:`AUTO_TISSUE_MASK`).
AUTO_TISSUE_MASK_PEN_MARKS_KEPT = "auto:saturation-otsu"


def otsu_threshold(values, *, bins=256):
    """Otsu's threshold of ``values``: the cut that maximises between-class variance.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.r_[np.full(100, 0.1), np.full(100, 0.9)]
    >>> 0.1 < otsu_threshold(v) < 0.9
    True
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = (w0 * w1 * (mean0 - mean1) ** 2)[:-1]
    # Empty bins between two modes give a plateau of equal scores: take its middle.
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float((edges[best[0] + 1] + edges[best[-1] + 1]) / 2)


def _pen_marks(rgb, *, opening=1):
    """Pixels of blue, green or black marker ink (bool), from colour alone.

    H&E absorbs green more than red (hematoxylin barely more, eosin far more), so stained
    tissue is never greener than it is red; marker inks absorb red most. Three rules:

    - *green and blue ink on glass or thinly over tissue*: greener than red (G - R at least
      5% of the brightest channel), saturated (at least 0.2);
    - *dense blue ink, also over tissue*: red at most 0.45 of blue, blue at least 60
      (hematoxylin-dense H&E stays above: lymphoid tissue has R/B ~ 0.9 on thumbnails);
    - *black ink*: near-black (no channel above 35), or dark grey (no channel above 90,
      saturation under 0.25), as black ink is grey on glass and only darkens tissue.

    A binary opening removes specks (single dark nuclei at fine resolutions): marks are
    strokes. The thresholds were set on real H&E tiles against ink colours taken within the
    ranges that histolab's and python-wsi-preprocessing's pen filters give for marker ink on
    TCGA thumbnails (``benchmarks/pen_marks.py``).
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    cmax = rgb.max(axis=2)
    sat = np.where(cmax > 0, (cmax - rgb.min(axis=2)) / np.maximum(cmax, 1e-6), 0.0)
    greenish = (g - r >= 0.05 * cmax) & (sat >= 0.2)
    blue = (r <= 0.45 * b) & (b >= 60)
    black = (cmax <= 35) | ((cmax <= 90) & (sat < 0.25))
    pen = greenish | blue | black
    if opening:
        pen = ndimage.binary_opening(pen, iterations=opening)
    return pen


def tissue_mask(rgb, *, min_saturation=0.08, min_region_px=16, closing=2, exclude_pen_marks=True):
    """Boolean tissue mask of an RGB thumbnail.

    Stained tissue is saturated while glass and background are not: pixels whose HSV
    saturation exceeds Otsu's threshold (and at least ``min_saturation``, so that a blank
    slide stays blank) are tissue. Near-black pixels (scanner artefacts) are excluded, and
    by default so are blue, green and black pen marks, on glass and where the ink is dense
    over tissue. A morphological closing joins fragments, holes are filled and regions
    smaller than ``min_region_px`` pixels are dropped.

    Parameters
    ----------
    rgb : ndarray of shape (h, w, 3), uint8
    min_saturation : float
        Floor of the saturation threshold, in [0, 1].
    min_region_px : int
        Connected regions smaller than this are removed.
    closing : int
        Iterations of binary closing (0 disables it).
    exclude_pen_marks : bool, default=True
        Leave out blue, green and black marker ink. Ink is found by colour: H&E is never
        greener than it is red, nor as blue as dense ink. The saturation threshold is then
        computed without the ink, and a ring drawn around tissue no longer turns the glass
        inside it into tissue. Measured with ``benchmarks/pen_marks.py`` on real H&E at 2-14
        µm/px: no Kather 2016 texture (lymphoid and stromal included) nor TCGA tile loses
        tissue (CMU-1 loses at most 0.5%: teal margin dye on its edges); marker ink on glass
        taken for tissue falls from 95-99% to at most 0.3%. Over tissue, 74-97% of dense
        ink is left out (blue (35, 75, 170), green (40, 130, 110), black (20, 20, 25) on
        glass), but lighter ink mostly stays (2-61% left out).
        At full resolution (0.5 µm/px), 3% of dense lymphoid tissue is taken for ink. Turn
        it off for stains other than H&E (e.g. blue-counterstained IHC), and give a tissue
        mask where ink must go for sure.

    Returns
    -------
    mask : ndarray of shape (h, w), bool

    Examples
    --------
    >>> import numpy as np
    >>> from he2rna_sklearn.slides import tissue_mask
    >>> thumb = np.full((60, 90, 3), 240, dtype=np.uint8)  # glass
    >>> thumb[10:50, 10:40] = (170, 80, 140)  # H&E-stained tissue
    >>> thumb[10:50, 55:80] = (40, 90, 180)  # a blue marker stroke on the glass
    >>> mask = tissue_mask(thumb)
    >>> bool(mask[30, 25]), bool(mask[30, 65])
    (True, False)
    >>> bool(tissue_mask(thumb, exclude_pen_marks=False)[30, 65])
    True
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"tissue_mask expects an (h, w, 3) RGB image, got shape {rgb.shape}.")
    rgb = rgb[..., :3].astype(np.float32)
    cmax = rgb.max(axis=2)
    cmin = rgb.min(axis=2)
    sat = np.where(cmax > 0, (cmax - cmin) / np.maximum(cmax, 1e-6), 0.0)
    pen = _pen_marks(rgb) if exclude_pen_marks else np.zeros(sat.shape, dtype=bool)
    # Ink is more saturated than tissue: left in, it would pull Otsu's threshold above it.
    threshold = max(otsu_threshold(sat[~pen] if (~pen).any() else sat), float(min_saturation))
    mask = (sat > threshold) & (cmax > 25) & ~pen
    if closing:
        mask = ndimage.binary_closing(mask, iterations=closing, border_value=0)
    mask = ndimage.binary_fill_holes(mask)
    mask &= ~pen  # filling and closing must not bring ink lying on tissue back
    if min_region_px > 1 and mask.any():
        labels, n = ndimage.label(mask)
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
        keep = np.zeros(n + 1, dtype=bool)
        keep[1:] = sizes >= min_region_px
        mask = keep[labels]
    return mask
