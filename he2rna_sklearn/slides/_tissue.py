"""Tissue detection on a slide thumbnail."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["otsu_threshold", "tissue_mask"]


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


def tissue_mask(rgb, *, min_saturation=0.08, min_region_px=16, closing=2):
    """Boolean tissue mask of an RGB thumbnail.

    Stained tissue is saturated while glass and background are not: pixels whose HSV
    saturation exceeds Otsu's threshold (and at least ``min_saturation``, so that a blank
    slide stays blank) are tissue. Near-black pixels (pen marks, scanner artefacts) are
    excluded. A morphological closing joins fragments, holes are filled and regions smaller
    than ``min_region_px`` pixels are dropped.

    Parameters
    ----------
    rgb : ndarray of shape (h, w, 3), uint8
    min_saturation : float
        Floor of the saturation threshold, in [0, 1].
    min_region_px : int
        Connected regions smaller than this are removed.
    closing : int
        Iterations of binary closing (0 disables it).

    Returns
    -------
    mask : ndarray of shape (h, w), bool
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"tissue_mask expects an (h, w, 3) RGB image, got shape {rgb.shape}.")
    rgb = rgb[..., :3].astype(np.float32)
    cmax = rgb.max(axis=2)
    cmin = rgb.min(axis=2)
    sat = np.where(cmax > 0, (cmax - cmin) / np.maximum(cmax, 1e-6), 0.0)
    threshold = max(otsu_threshold(sat), float(min_saturation))
    mask = (sat > threshold) & (cmax > 25)
    if closing:
        mask = ndimage.binary_closing(mask, iterations=closing, border_value=0)
    mask = ndimage.binary_fill_holes(mask)
    if min_region_px > 1 and mask.any():
        labels, n = ndimage.label(mask)
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
        keep = np.zeros(n + 1, dtype=bool)
        keep[1:] = sizes >= min_region_px
        mask = keep[labels]
    return mask
