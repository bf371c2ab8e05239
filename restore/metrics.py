"""Image quality metrics, with their conventions written down.

* PSNR: ``10 log10(R^2 / MSE)`` over all pixels and channels.
* SSIM: scikit-image's ``structural_similarity`` with a Gaussian window of
  sigma 1.5, population (not sample) covariance, K1 = 0.01, K2 = 0.03 -- the
  settings of Wang et al. (2004) -- averaged over channels.
* ``R`` (the data range) follows the dtype: 255 for uint8, 65535 for uint16,
  1.0 for floats (taken to be in [0, 1]).
* ``crop`` drops that many pixels at each border first; super-resolution is
  scored with ``crop = scale``.
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def _prepare(reference: np.ndarray, image: np.ndarray, crop: int):
    reference, image = np.asarray(reference), np.asarray(image)
    if reference.shape != image.shape:
        raise ValueError(f"reference shape {reference.shape} differs from image shape {image.shape}")
    if reference.dtype != image.dtype:
        raise ValueError(f"reference dtype {reference.dtype} differs from image dtype {image.dtype}")
    if crop < 0 or 2 * crop >= min(reference.shape[:2]):
        raise ValueError(f"crop {crop} does not fit an image of shape {reference.shape}")
    if crop:
        reference, image = reference[crop:-crop, crop:-crop], image[crop:-crop, crop:-crop]
    data_range = float(np.iinfo(reference.dtype).max) if reference.dtype.kind in "ui" else 1.0
    return reference.astype(np.float64), image.astype(np.float64), data_range


def psnr(reference: np.ndarray, image: np.ndarray, *, crop: int = 0) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images)."""
    reference, image, data_range = _prepare(reference, image, crop)
    mse = np.mean((reference - image) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim(reference: np.ndarray, image: np.ndarray, *, crop: int = 0) -> float:
    """Structural similarity in [-1, 1]; ``(H, W)`` or ``(H, W, C)`` arrays."""
    reference, image, data_range = _prepare(reference, image, crop)
    if reference.ndim == 3 and reference.shape[2] == 1:
        reference, image = reference[:, :, 0], image[:, :, 0]
    return float(structural_similarity(
        reference, image, data_range=data_range, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, channel_axis=2 if reference.ndim == 3 else None))
