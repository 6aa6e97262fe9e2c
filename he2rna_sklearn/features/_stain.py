"""Colour normalisation of H&E tiles (Reinhard et al. 2001, in CIELAB)."""

from __future__ import annotations

import numpy as np

__all__ = ["ReinhardNormalizer", "lab_to_rgb", "rgb_to_lab"]

# sRGB (D65) <-> XYZ matrices and the D65 white point.
_RGB2XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_XYZ2RGB = np.linalg.inv(_RGB2XYZ)
_WHITE = _RGB2XYZ.sum(axis=1)


def _f(t):
    return np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)


def _f_inv(t):
    return np.where(t > 6 / 29, t**3, 3 * (6 / 29) ** 2 * (t - 4 / 29))


def rgb_to_lab(rgb):
    """uint8 sRGB (..., 3) to CIELAB (L in [0, 100])."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = lin @ _RGB2XYZ.T / _WHITE
    fx, fy, fz = (_f(xyz[..., i]) for i in range(3))
    return np.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)


def lab_to_rgb(lab):
    """CIELAB (..., 3) to uint8 sRGB, clipped to the gamut."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    fx = fy + lab[..., 1] / 500
    fz = fy - lab[..., 2] / 200
    xyz = np.stack([_f_inv(fx), _f_inv(fy), _f_inv(fz)], axis=-1) * _WHITE
    lin = np.clip(xyz @ _XYZ2RGB.T, 0, 1)
    c = np.where(lin > 0.0031308, 1.055 * lin ** (1 / 2.4) - 0.055, 12.92 * lin)
    return np.clip(np.round(c * 255), 0, 255).astype(np.uint8)


class ReinhardNormalizer:
    """Match each tile's per-channel CIELAB mean and standard deviation to a target.

    Use it as ``SlideFeaturizer(tile_transform=ReinhardNormalizer().fit(reference))``; it
    runs on every tile in the reading workers, before the backbone. Near-white background
    pixels (L > 90) are left out of a tile's statistics and kept as they are.

    Parameters
    ----------
    target_mean, target_std : tuple of 3 float, optional
        Target CIELAB statistics. Set them, or call :meth:`fit` on a reference image.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.random.default_rng(0).integers(80, 200, (64, 64, 3)).astype(np.uint8)
    >>> norm = ReinhardNormalizer().fit(ref)
    >>> norm(ref).shape
    (64, 64, 3)
    """

    def __init__(self, target_mean=None, target_std=None):
        self.target_mean = None if target_mean is None else np.asarray(target_mean, float)
        self.target_std = None if target_std is None else np.asarray(target_std, float)

    @staticmethod
    def _stats(lab):
        pixels = lab.reshape(-1, 3)
        tissue = pixels[pixels[:, 0] <= 90]
        if len(tissue) < 16:
            tissue = pixels
        return tissue.mean(axis=0), tissue.std(axis=0) + 1e-6

    def fit(self, reference):
        """Take the target statistics from an RGB reference image (uint8, (h, w, 3))."""
        self.target_mean, self.target_std = self._stats(rgb_to_lab(reference))
        return self

    def __call__(self, tile):
        if self.target_mean is None:
            raise ValueError("ReinhardNormalizer has no target: call fit(reference) first.")
        lab = rgb_to_lab(tile)
        mean, std = self._stats(lab)
        out = (lab - mean) / std * self.target_std + self.target_mean
        background = lab[..., 0] > 90
        out[background] = lab[background]
        return lab_to_rgb(out)

    def __repr__(self):
        return f"ReinhardNormalizer(target_mean={self.target_mean}, target_std={self.target_std})"
