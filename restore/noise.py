"""Estimating the level of white Gaussian noise in an image."""
from __future__ import annotations

import numpy as np

from .images import ImageError


def estimate_noise(pixels: np.ndarray, *, quantisation=None) -> float:
    """Gaussian noise standard deviation of ``(H, W, C)`` pixels in [0, 1], in 0..255 units.

    With ``quantisation`` (:class:`restore.jpeg.Quantisation`: the pixels are a JPEG file's,
    decoded), the noise in the image before the file was written, read from the coefficients the
    file kept (:func:`_jpeg_level`): the file's rounding wipes out most of the fine detail the
    estimate below reads, and with it most of the noise's trace there.

    Each block of 4x4 pixels (each channel its own) gives the mean square of its four 2x2 cells'
    finest diagonal Haar coefficients: white noise fills them, and image structure (texture,
    edges) only ever adds to them. The noise's variance is a low quantile of the blocks' mean
    squares (:data:`LEVEL_QUANTILE`) over that quantile of the chi-square of 4 degrees of freedom
    (divided by 4); the estimate is the mean over channels. Clipping at 0 or 1 hides noise, so blocks
    with a pixel at 0 or 1 are left out; but where they are most of a channel (fewer than
    :data:`UNCLIPPED_BLOCKS` of its blocks free of clipping: a dark photograph, heavy noise), what is
    left is no sample of its smooth parts, and there a block with a share of its pixels clipped (up to
    :data:`CLIPPED_SHARE`, at one end) is read with its mean square divided by the variance a flat
    patch keeps under that much clipping (:func:`_clipped_variance`). An image smaller
    than 4x4 pixels takes Donoho's estimate: the median absolute finest diagonal Haar coefficient
    of its 2x2 cells over 0.6745.

    On the 24 held-out crops (128 to 384 px, never the benchmark), 8-bit, mean absolute error at
    sigma 0 / 1 / 2 / 3 / 5 / 10 / 15 / 25 / 50: 1.11 / 0.88 / 0.88 / 0.89 / 1.00 / 1.07 / 1.21 /
    1.27 / 6.39, against Donoho's on the whole image 2.25 / 1.82 / 1.65 / 1.57 / 1.61 / 1.70 /
    1.64 / 2.81 / 10.36, which took a clean butterfly's wings (128x128) for noise of 17.8 (now 4.4).
    Those figures are from before the clipped blocks were read: leaving them all out left the estimate
    low where the smooth parts are dark (the crops darkened to 10 %, sigma 10 / 25 / 50: 8.62 / 17.11 /
    29.61, now 9.66 / 23.61 / 46.01; as they are, sigma 25 / 50: 24.42 / 44.11 -> 24.91 / 48.52; sigma 0
    to 10 within 0.1 of before). Reading them everywhere (not only where most blocks are clipped) did
    as well there but took the clean butterfly's wings for 6.5. Denoising with the estimate (12 + 6
    crops) gained 5.5 dB at sigma 25 on the crops darkened to 10 % (33.68 -> 39.16), 1.3 darkened to
    30 % (34.96 -> 36.22), 1.6 at sigma 50 (27.29 -> 28.87), 0.6 at 25 (32.29 -> 32.86), 0.06 at 10.
    """
    from scipy.stats import chi2
    pixels = pixels if pixels.ndim == 3 else pixels[:, :, None]
    if quantisation is not None and min(pixels.shape[:2]) >= 8:     # a whole block of the file to read
        _, kept, steps, luma_share = _jpeg_blocks(pixels, quantisation)
        return min(_jpeg_level(kept, steps, luma_share), MAX_LEVEL)
    h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
    if h == 0 or w == 0:
        raise ImageError(f"an image of {pixels.shape[1]}x{pixels.shape[0]} pixels is too small to estimate its noise; "
                         "give its noise level (--sigma, or sigma= in Python)")
    if h < 4 or w < 4:
        p = pixels[:h, :w].astype(np.float64)
        diagonal = (p[0::2, 0::2] - p[0::2, 1::2] - p[1::2, 0::2] + p[1::2, 1::2]) / 2
        return min(float(np.mean(np.median(np.abs(diagonal), axis=(0, 1)) / 0.6745)) * 255.0, MAX_LEVEL)
    unbias = chi2.ppf(LEVEL_QUANTILE, 4) / 4
    levels = []
    for channel in range(pixels.shape[2]):
        plane = pixels[:, :, channel:channel + 1]
        _, square = _haar_blocks(plane)
        cells, bh, bw = _cells(plane)
        black, white = (_blocks((cells <= 0).mean(0).astype(np.float64), bh, bw),
                        _blocks((cells >= 1).mean(0).astype(np.float64), bh, bw))
        share = np.maximum(black, white)
        kept = share == 0
        if kept.mean() < UNCLIPPED_BLOCKS:
            square = square / _clipped_variance(share)
            kept = (share <= CLIPPED_SHARE) & ~((black > 0) & (white > 0))
        if kept.sum() >= MIN_BLOCKS:
            square = square[kept]
        levels.append(np.sqrt(np.quantile(square, LEVEL_QUANTILE) / unbias))
    return min(float(np.mean(levels)) * 255.0, MAX_LEVEL)


#: The most noise there can be in [0, 1] pixels, 0..255 units: the standard deviation of values
#: that are each 0 or 1 alike. A pattern of the finest pixels (a checkerboard) reads as more.
MAX_LEVEL = 127.5
#: The quantile of the blocks' mean squares taken as the noise's in :func:`estimate_noise`: on the
#: held-out crops 0.05 / 0.1 / 0.2 / 0.35 gave a mean absolute error of 0.91 / 1.11 / 1.38 / 1.92 at
#: sigma 0 and 1.24 / 1.27 / 1.42 / 1.49 at 25; 0.1 keeps twice the blocks of 0.05 for small images.
LEVEL_QUANTILE = 0.1
#: The fewest blocks :func:`estimate_noise` estimates from alone.
MIN_BLOCKS = 16
#: The share of a channel's blocks free of clipping below which :func:`estimate_noise` reads the
#: clipped ones too (chosen on the held-out crops from 0.25 and 0.5, which read the butterfly's
#: wings as 4.4 and 6.5, and a tenth of the crops' error more at sigma 50 for 0.25).
UNCLIPPED_BLOCKS = 0.25
#: The largest share of a block's pixels clipped at 0 (or at 1) with which :func:`estimate_noise`
#: still reads it (half: the patch's level at the clip itself, where a third of the variance is left).
CLIPPED_SHARE = 0.5


def _clipped_variance(share: np.ndarray) -> np.ndarray:
    """The variance of ``max(0, x + n)``, ``n ~ N(0, 1)``, where ``x`` is the level at which a share
    ``share`` (at most a half) of such values is clipped: ``x = -Phi^-1(share)``; 1 for no share."""
    from scipy.special import ndtr, ndtri
    t = -ndtri(np.clip(share, 1e-12, CLIPPED_SHARE))
    below, density = ndtr(t), np.exp(-t * t / 2) / np.sqrt(2 * np.pi)
    mean = t * below + density
    return np.where(share > 0, (t * t + 1) * below + t * density - mean * mean, 1.0)


def estimate_poisson_gaussian(pixels: np.ndarray, *, bins: int = 16, pilot: np.ndarray | None = None,
                              start: tuple[float, float] | None = None, quantisation=None) -> tuple[float, float]:
    """Signal-dependent noise of ``(H, W, C)`` pixels in [0, 1]: ``(a, b)`` of the variance ``a x + b``.

    After Foi et al. (2008): each 2x2 cell gives a local mean (the signal ``x``) and a finest
    diagonal Haar coefficient (noise of the cell's variance, barely any image structure); blocks of
    2x2 cells give a mean and the mean square of their 4 coefficients. Blocks are sorted into
    ``bins`` by their mean; texture and edges only ever add to a block's mean square, so a bin's
    noise variance is a low quantile of them (:data:`QUANTILE`) over that quantile of the
    chi-square of 4 degrees of freedom. ``a, b`` are then fitted to the bins through the clipped
    model (:func:`clipped_moments`): clipping at 0 and 1 shrinks the variance of the darkest and
    brightest bins, which pin down the floor ``b``. Units are [0, 1] (``a`` in pixel values, ``b``
    squared).

    With ``pilot``, a restoration of ``pixels`` (the same shape), that estimate is fitted again on
    the blocks the pilot shows smooth (:func:`_smooth_fit`): where texture is everywhere, the low
    quantile still holds some of it. ``start``, an estimate made before (from more of the image),
    then stands in for the first one, and is what comes back where too few blocks are smooth.

    With ``quantisation`` (the pixels are a JPEG file's, decoded), the noise before the file was
    written: the file's blocks sorted into ``bins`` by their brightness, each bin's level read from
    the coefficients the file kept as :func:`estimate_noise` reads the image's (``pilot`` and
    ``start`` are not used), and the line fitted through them.
    """
    from scipy.stats import chi2
    pixels = pixels if pixels.ndim == 3 else pixels[:, :, None]
    if quantisation is not None and min(pixels.shape[:2]) >= 8:
        return _jpeg_sensor(*_jpeg_blocks(pixels, quantisation), bins)
    h, w = pixels.shape[0] // 4 * 4, pixels.shape[1] // 4 * 4
    if h < 8 or w < 8:
        raise ImageError(f"an image of {pixels.shape[1]}x{pixels.shape[0]} pixels is too small to estimate its noise; "
                         "give its noise (--noise poisson-gaussian:A,B, or noise= in Python)")
    block_mean, block_square = _haar_blocks(pixels)
    if pilot is not None and start is not None:
        return _smooth_fit(block_mean, block_square, _structure_blocks(_like(pilot, pixels)), *start, bins)
    unbias = chi2.ppf(QUANTILE, 4) / 4
    bins = min(bins, block_mean.size // 8)
    if bins < 3:                       # too few blocks for a line: one level
        return 0.0, float(np.quantile(block_square, QUANTILE) / unbias)
    centres, variances, counts = [], [], []
    for chosen in _brightness_bins(block_mean, bins):
        centres.append(block_mean[chosen].mean())
        variances.append(np.quantile(block_square[chosen], QUANTILE) / unbias)
        counts.append(chosen.sum())
    x, v, n = np.array(centres), np.array(variances), np.array(counts, np.float64)
    a, b = _clipped_fit(x, v, n, *_line_fit(x, v, n))
    if pilot is None:
        return a, b
    return _smooth_fit(block_mean, block_square, _structure_blocks(_like(pilot, pixels)), a, b, bins)


def _brightness_bins(level: np.ndarray, bins: int):
    """``bins`` masks of the blocks, by their ``level``, each holding as many blocks (its quantiles)."""
    edges = np.quantile(level, np.linspace(0, 1, bins + 1))
    for lo, hi in zip(edges[:-1], edges[1:]):
        yield (level >= lo) & (level <= hi)


def _like(pilot: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """``pilot`` as ``(H, W, C)`` beside ``pixels``, or a ``ValueError``."""
    pilot = pilot if pilot.ndim == 3 else pilot[:, :, None]
    if pilot.shape != pixels.shape:
        raise ValueError(f"pilot of shape {pilot.shape} differs from the pixels' {pixels.shape}")
    return pilot


def _cells(pixels: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The four pixels of every 2x2 cell, ``(4, H/2, W/2, C)``, of the image cut to a multiple of 4."""
    h, w = pixels.shape[0] // 4 * 4, pixels.shape[1] // 4 * 4
    p = pixels[:h, :w].astype(np.float64)
    return np.stack([p[0::2, 0::2], p[0::2, 1::2], p[1::2, 0::2], p[1::2, 1::2]]), h, w


def _blocks(v: np.ndarray, h: int, w: int) -> np.ndarray:
    """Per-cell values averaged over each block of 2x2 cells (4x4 pixels), one per block and channel."""
    return v.reshape(h // 4, 2, w // 4, 2, -1).mean((1, 3)).ravel()


def _haar_blocks(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block of 4x4 pixels (each channel its own), from its four 2x2 cells: the mean, and the
    mean square of the cells' diagonal Haar coefficients."""
    c, h, w = _cells(pixels)
    return _blocks(c.mean(0), h, w), _blocks(((c[0] - c[1] - c[2] + c[3]) / 2) ** 2, h, w)


def _structure_blocks(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block as :func:`_haar_blocks`: the mean, and the block's structure (the mean square of
    all three of the cells' Haar details, plus four times the spread of the cells' means)."""
    c, h, w = _cells(pixels)
    mean = c.mean(0)
    details = sum((signs[0] * c[0] + signs[1] * c[1] + signs[2] * c[2] + signs[3] * c[3]) ** 2 / 4
                  for signs in ((1, -1, 1, -1), (1, 1, -1, -1), (1, -1, -1, 1)))
    cells = mean.reshape(h // 4, 2, w // 4, 2, -1)
    spread = ((cells - cells.mean((1, 3), keepdims=True)) ** 2).mean((1, 3)).ravel()
    return _blocks(mean, h, w), _blocks(details, h, w) + 4 * spread


def _smooth_fit(block_mean, block_square, pilot_blocks, a, b, bins) -> tuple[float, float]:
    """``a, b`` fitted again on the blocks whose pilot's structure is below :data:`SMOOTH` of the
    noise ``a, b`` expects there, sorted into bins by the pilot's means (nearly noiseless), each
    bin's variance the plain mean of its mean squares (no texture left to keep out), through the
    exact moments of a clipped sensor (:func:`clipped_sensor_moments`: at a few photons a pixel
    the Poisson counts' skew leaves more variance after clipping than a Gaussian's). Where fewer
    than 3 bins of 8 such blocks are left, ``a, b`` as they came."""
    pilot_mean, structure = pilot_blocks
    smooth = structure < SMOOTH * (a * np.clip(pilot_mean, 0, 1) + b)
    if smooth.sum() < 3 * 8:
        return a, b
    mean, square, level = block_mean[smooth], block_square[smooth], pilot_mean[smooth]
    bins = min(bins, len(level) // 8)
    x, v, n = [], [], []
    for chosen in _brightness_bins(level, bins):
        if chosen.sum() >= 4:
            x.append(mean[chosen].mean()), v.append(square[chosen].mean()), n.append(chosen.sum())
    if len(x) < 3:
        return a, b
    return _clipped_fit(np.array(x), np.array(v), np.array(n, np.float64), a, b, moments=clipped_sensor_moments)


#: A block counts as smooth where its pilot's structure (:func:`_structure_blocks`) is below this share
#: of the noise's variance there. Chosen on 24 crops of the training photographs and the 6 held-out
#: crops of 256x256 with a small sensor's noise (not the benchmark), the photo prior's restoration
#: as the pilot: `a` within 10 % on all 30 (29 without the pilot, the worst 33 % off, now 10 %;
#: 0.01 and 0.005: 27 and 21), `b` within 20 % on 9 (5; median error 0.45 against 0.69), and the
#: restoration with the estimate 0.08 dB nearer the one with the true `a, b` on 18 held-out crops
#: (33.31 -> 33.39 dB; true: 33.42). Binning by the noisy blocks' means instead of the pilot's
#: scored about the same (`a` within 10 % on 29, `b` within 20 % on 11).
SMOOTH = 0.02


#: The quantile of the blocks' mean squares taken as a bin's noise: chosen on 24 crops of 256x256
#: of the training photographs with a small sensor's noise (not the benchmark): 0.35 put the floor
#: within 20 % on 6 of them (0.2: 4, 0.5: 5; blocks of 4x4 cells: at most 6; the former estimate, every
#: cell's coefficient in its bin and a line through the unclipped bins: 2, the median crop's floor
#: 134 % too high, against 11 % now), the gain within 20 % on 23 (22).
QUANTILE = 0.35


def _line_fit(x, v, n) -> tuple[float, float]:
    """``a, b`` of the count-weighted least-squares line through the bins, neither below 0, from the
    bins that clipping leaves alone where there are enough of them."""
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


def clipped_moments(mean: np.ndarray, variance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``clip(y, 0, 1)`` for ``y ~ N(mean, variance)``."""
    from scipy.special import ndtr
    std = np.sqrt(variance)

    def above(c):                      # E[y 1{y > c}], E[y^2 1{y > c}], P(y > c)
        t = (c - mean) / std
        tail, density = ndtr(-t), np.exp(-t * t / 2) / np.sqrt(2 * np.pi)
        return mean * tail + std * density, (mean**2 + variance) * tail + std * (mean + c) * density, tail

    first0, second0, _ = above(0.0)
    first1, second1, beyond = above(1.0)
    m = first0 - first1 + beyond
    return m, np.maximum(second0 - second1 + beyond - m * m, 0.0)


def _clipped_fit(x, v, n, a, b, *, moments=None) -> tuple[float, float]:
    """``a, b`` fitted to every bin through the clipped model (Foi et al. 2008, section 4): the
    line's intercept alone extrapolates the floor from the brighter bins, where it is a small part
    of the variance; the dark bins pin it down once clipping's shrinkage is modelled."""
    from scipy.optimize import minimize
    keep = v > 0
    x, v, n = x[keep], v[keep], n[keep]
    if len(x) < 3:
        return a, b
    # The sensor's counts are 0 below black, where its means would stop rising: its grid starts there.
    grid = np.linspace(-0.5, 1.5, 2001) if moments is None else np.linspace(0, 1.5, 301)

    def misfit(params):
        a, b = np.exp(params)
        if moments is None:
            means, variances = clipped_moments(grid, np.maximum(a * np.clip(grid, 0, None) + b, 1e-12))
        else:
            means, variances = moments(grid, a, b)
        predicted = np.interp(x, means, variances)
        return float((n * np.log(v / np.maximum(predicted, 1e-12)) ** 2).sum())

    start = np.log([max(a, 1e-5), max(b, 1e-7)])
    fitted = minimize(misfit, start, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-8})
    a, b = np.exp(fitted.x).clip(0, 1)
    return float(a), float(b)


def clipped_sensor_moments(x: np.ndarray, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``clip(a K + N(0, b), 0, 1)``, ``K ~ Poisson(x / a)``, for each ``x``
    (a sensor's photon counts and read noise; below 0 the counts are 0). Summed over the counts
    up to :data:`FEW_PHOTONS` a pixel on average; beyond, the Gaussian of variance ``a x + b``."""
    from scipy.stats import poisson
    x = np.asarray(x, np.float64)
    photons = np.clip(x, 0, None) / max(a, 1e-12)
    mean, variance = clipped_moments(x, np.maximum(a * np.clip(x, 0, None) + b, 1e-12))
    few = photons < FEW_PHOTONS
    if few.any():
        counts = np.arange(int(FEW_PHOTONS + 8 * FEW_PHOTONS ** 0.5 + 20))
        weights = poisson.pmf(counts[None, :], photons[few, None])
        first, spread = clipped_moments(a * counts[None, :].astype(np.float64), np.full((1, len(counts)), max(b, 1e-12)))
        m = (weights * first).sum(1)
        second = (weights * (spread + first ** 2)).sum(1)
        mean[few], variance[few] = m, np.maximum(second - m * m, 0.0)
    return mean, variance


#: Mean photon counts a pixel up to which :func:`clipped_sensor_moments` sums over the counts.
FEW_PHOTONS = 60


# --- Noise under a JPEG file's rounding --------------------------------------------------------
#
# A camera's JPEG holds the sensor's noise rounded with the rest of the image: in each 8x8 block of
# the luminance, every DCT coefficient (orthonormal, so white noise of level s puts noise of level
# s into each) is rounded to a multiple of its table's step. Where the step is coarse against the
# noise, the noise is mostly rounded to 0; the finest pixel detail, which :func:`estimate_noise`
# reads, goes first. So under a JPEG the noise is read from the file's own coefficients: each block
# gives the mean square of its coefficients of order u + v >= JPEG_ORDER (what texture holds least
# of), and the level is the one whose pure noise, rounded with the file's steps, puts the same low
# quantile (LEVEL_QUANTILE) of blocks below that value (simulated, the same draws every time).
#
# Held-out crops (12 of 128px, never the benchmark), Gaussian noise then a JPEG of quality 75 / 90,
# level at sigma 0 / 5 / 15 / 25: 3.9 / 6.2 / 15.7 / 24.3 and 3.9 / 7.0 / 16.2 / 24.1, against the
# finest-detail estimate's 0.7 / 1.0 / 4.4 / 12.3 and 1.0 / 2.4 / 11.1 / 16.4; denoised with it,
# 35.45 / 34.12 / 32.66 / 30.10 and 39.04 / 37.65 / 33.71 / 30.73 dB against 35.31 / 33.73 / 28.10 /
# 25.01 and 38.95 / 35.35 / 30.45 / 27.89 (the decoded files: 35.24 / 33.65 / 27.80 / 23.64 and
# 38.76 / 35.03 / 27.47 / 23.70). Orders from 2 / 6 instead of 4: 6.4 / 0.1 at sigma 0 and quality
# 75 (texture / steps too coarse to see the noise), the same within 0.6 at 15 and 25.
#
# Texture reads as noise too, and more under a JPEG than in the pixels: it lies in the luminance,
# whose reading is divided by the luminance's share of each channel's noise. A second reading of the
# same blocks, :func:`estimate_noise`'s own (the finest diagonal detail of each 4x4 quarter of a
# block, through the same simulated rounding), finds the smooth spots of small images that whole
# blocks miss; the level is the lower of the two. Held-out crops (12 of 128px, 12 of 64px), denoised
# with the level as it comes out, quality 90 at sigma 0 / 5 / 15: 37.07 / 35.94 / 32.67 dB with the
# high orders alone -> 37.51 / 36.43 / 32.87 (the file 37.80 / 34.66 / 27.27); quality 75: 34.45 /
# 33.71 / 31.96 -> 34.66 / 33.90 / 32.07; the worst crop against its file -11.54 -> -7.74 dB. Crops
# of texture as fine as noise (gravel, foliage) still read as noisy, in the pixels too (11 to 15
# there, clean): nothing in one image tells them apart from noise, and ``--sigma`` is the answer.

#: The lowest order ``u + v`` of the luminance's DCT coefficients the JPEG estimate reads.
JPEG_ORDER = 4
#: The pure-noise blocks the JPEG estimate simulates (fixed draws: the estimate is deterministic).
_JPEG_DRAWS = np.random.default_rng(20261207).standard_normal((4096, 64))


def _jpeg_blocks(pixels: np.ndarray, quantisation) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The decoded JPEG ``pixels`` (upright) as the file's luminance blocks: each block's mean (0..1)
    and its 64 coefficients as the file kept them (0..255 units, ``(blocks, 64)``, row by row), the
    table's 64 steps, and the luminance's noise per unit of each channel's (a colour file's
    channels' noise, independent, mixed by the luminance's weights; 1 for grey). Blocks with a pixel
    at 0 or 1 are left out where :data:`MIN_BLOCKS` others remain."""
    from scipy.fft import dctn

    from .jpeg import LUMA, to_stored
    stored = to_stored(pixels, quantisation.orientation)
    weights = LUMA.double().numpy()
    colour = len(quantisation.tables) == 3 and stored.shape[2] == 3
    luma = stored @ weights if colour else stored[:, :, 0].astype(np.float64)
    h, w = luma.shape[0] // 8 * 8, luma.shape[1] // 8 * 8      # (8 or more each: the callers see to it)
    blocks = (luma[:h, :w] * 255).reshape(h // 8, 8, w // 8, 8).swapaxes(1, 2).reshape(-1, 8, 8)
    clipped = ((stored[:h, :w] <= 0) | (stored[:h, :w] >= 1)).any(2).reshape(h // 8, 8, w // 8, 8).any((1, 3))
    clipped = clipped.reshape(-1)
    if (~clipped).sum() >= MIN_BLOCKS:
        blocks = blocks[~clipped]
    coefficients = dctn(blocks, axes=(1, 2), norm="ortho").reshape(len(blocks), 64)
    steps = np.asarray(quantisation.tables[0], np.float64).reshape(-1)
    # The decoder's pixels hold the file's multiples of each step, give or take its own rounding.
    kept = np.round(coefficients / steps) * steps
    return blocks.mean((1, 2)) / 255, kept, steps, float(np.linalg.norm(weights)) if colour else 1.0


def _high_orders(kept: np.ndarray) -> np.ndarray:
    """Each block's mean square of its coefficients of order ``u + v >= JPEG_ORDER``."""
    u, v = np.divmod(np.arange(64), 8)
    return (kept[:, u + v >= JPEG_ORDER] ** 2).mean(1)


def _fine_detail(kept: np.ndarray) -> np.ndarray:
    """The mean square of the finest diagonal Haar coefficients of each 4x4 quarter of each block
    (the blocks' pixels from ``kept``): :func:`estimate_noise`'s reading, four per block."""
    from scipy.fft import idctn
    p = idctn(kept.reshape(-1, 8, 8), axes=(1, 2), norm="ortho")
    diagonal = (p[:, 0::2, 0::2] - p[:, 0::2, 1::2] - p[:, 1::2, 0::2] + p[:, 1::2, 1::2]) / 2
    return (diagonal.reshape(-1, 2, 2, 2, 2).swapaxes(2, 3).reshape(-1, 4, 4) ** 2).mean(2).reshape(-1)


def _jpeg_level(kept: np.ndarray, steps: np.ndarray, luma_share: float, *,
                readings=(_high_orders, _fine_detail)) -> float:
    """The noise level (0..255, of each channel) before the file's rounding, from its blocks
    (:func:`_jpeg_blocks`): the lowest of ``readings``' levels; see the section's comment."""
    from scipy.optimize import brentq
    levels = []
    for reading in readings:
        target = np.quantile(reading(kept), LEVEL_QUANTILE)

        def rounded(level):
            return np.quantile(reading(np.round(level * _JPEG_DRAWS / steps) * steps), LEVEL_QUANTILE) - target

        low, high = 0.01, 4 * MAX_LEVEL
        if rounded(low) >= 0:       # nothing the file's steps let through: no noise to be seen
            return 0.0
        levels.append(brentq(rounded, low, high, xtol=0.01) if rounded(high) > 0 else high)
    return min(min(levels) / luma_share, MAX_LEVEL)


def _jpeg_sensor(means, kept, steps, luma_share, bins) -> tuple[float, float]:
    """``a, b`` of a sensor's noise before the file's rounding: :func:`_jpeg_level` in each of
    ``bins`` of the blocks by brightness, the line through them (:func:`_line_fit`). The high
    orders alone: a bin holds a sixteenth of the blocks, and the lower of two readings of so few
    read the noise low (12 held-out crops of 128px, the benchmark's sensor at quality 85 / 95, gain
    `A` 0.0193 / 0.0165 against 0.0199 / 0.0185 alone, true 0.025; denoised 32.09 / 32.00 dB against
    31.97 / 32.31)."""
    bins = min(bins, len(means) // 8)
    if bins < 3:
        return 0.0, (_jpeg_level(kept, steps, luma_share, readings=(_high_orders,)) / 255) ** 2
    x, v, n = [], [], []
    for chosen in _brightness_bins(means, bins):
        x.append(means[chosen].mean())
        v.append((_jpeg_level(kept[chosen], steps, luma_share, readings=(_high_orders,)) / 255) ** 2)
        n.append(chosen.sum())
    return _line_fit(np.array(x), np.array(v), np.array(n, np.float64))
