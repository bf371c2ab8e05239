"""Estimating the level of white Gaussian noise in an image."""
from __future__ import annotations

import numpy as np


def estimate_noise(pixels: np.ndarray) -> float:
    """Gaussian noise standard deviation of ``(H, W, C)`` pixels in [0, 1], in 0..255 units.

    Donoho's robust wavelet estimate: the median absolute value of the finest
    diagonal Haar coefficients, divided by 0.6745, averaged over channels.
    Image structure barely reaches those coefficients; white noise fills them.
    """
    pixels = pixels if pixels.ndim == 3 else pixels[:, :, None]
    h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
    if h == 0 or w == 0:
        raise ValueError(f"image of size {pixels.shape[:2]} is too small to estimate its noise")
    p = pixels[:h, :w].astype(np.float64)
    diagonal = (p[0::2, 0::2] - p[0::2, 1::2] - p[1::2, 0::2] + p[1::2, 1::2]) / 2
    return float(np.mean(np.median(np.abs(diagonal), axis=(0, 1)) / 0.6745)) * 255.0
