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


def estimate_poisson_gaussian(pixels: np.ndarray, *, bins: int = 16) -> tuple[float, float]:
    """Signal-dependent noise of ``(H, W, C)`` pixels in [0, 1]: ``(a, b)`` of the variance ``a x + b``.

    After Foi et al. (2008): each 2x2 cell gives a local mean (the signal ``x``) and a finest
    diagonal Haar coefficient (noise of the cell's variance, barely any image structure). Cells
    are sorted into ``bins`` by their mean; in each bin the noise variance is the robust one
    (median absolute coefficient / 0.6745, squared), and ``a, b`` are the least-squares line
    through the bins, weighted by their counts, neither below 0. Bins within two deviations of 0
    or 1 are left out: clipping shrinks their variance. Units are [0, 1] (``a`` in pixel values, ``b`` squared).
    """
    pixels = pixels if pixels.ndim == 3 else pixels[:, :, None]
    h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
    if h < 8 or w < 8:
        raise ValueError(f"image of size {pixels.shape[:2]} is too small to estimate its noise")
    p = pixels[:h, :w].astype(np.float64)
    cells = np.stack([p[0::2, 0::2], p[0::2, 1::2], p[1::2, 0::2], p[1::2, 1::2]])
    mean = cells.mean(0).ravel()
    diagonal = ((cells[0] - cells[1] - cells[2] + cells[3]) / 2).ravel()
    edges = np.quantile(mean, np.linspace(0, 1, bins + 1))
    centres, variances, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        chosen = (mean >= lo) & (mean <= hi)
        if chosen.sum() < 16:
            continue
        d = diagonal[chosen]
        # The mean square within 3 robust deviations: the median alone is biased where photon
        # counts are few and discrete, the plain mean square by the odd edge; the cut keeps 99.7 %
        # of Gaussian noise (hence the 0.973).
        spread = max(np.median(np.abs(d)) / 0.6745, 1e-6)
        centres.append(mean[chosen].mean())
        variances.append(np.mean(d[np.abs(d) < 3 * spread] ** 2) / 0.973)
        counts.append(chosen.sum())
    x, v, n = np.array(centres), np.array(variances), np.array(counts, np.float64)
    # Clipping at 0 and 1 shrinks the spread of the bins within two deviations of either end.
    unclipped = (x - 2 * np.sqrt(v) > 0) & (x + 2 * np.sqrt(v) < 1)
    if unclipped.sum() >= 3:         # else every bin, clipped or not, is what there is
        x, v, n = x[unclipped], v[unclipped], n[unclipped]
    design = np.stack([x, np.ones_like(x)], 1) * np.sqrt(n)[:, None]
    (a, b), *_ = np.linalg.lstsq(design, v * np.sqrt(n), rcond=None)
    if a < 0:                          # no signal dependence: one level
        a, b = 0.0, float(np.average(v, weights=n))
    elif b < 0:                        # no floor: through the origin
        a, b = float((n * x * v).sum() / (n * x * x).sum()), 0.0
    return float(a), float(b)
