"""Image quality metrics, with their conventions written down.

* PSNR: ``10 log10(R^2 / MSE)`` over all pixels and channels.
* SSIM: scikit-image's ``structural_similarity`` with a Gaussian window of
  sigma 1.5 (truncated at 3.5 sigma, borders reflected), population (not sample)
  covariance, K1 = 0.01, K2 = 0.03 -- the settings of Wang et al. (2004) --
  averaged over channels. Computed here with OpenCV's filters, one channel and
  one band of rows at a time, to scikit-image's values (the tests compare): its
  float64 copies of whole images took over a gigabyte for a 12 MP photograph,
  and its filters four times as long.
* ``R`` (the data range) follows the dtype: 255 for uint8, 65535 for uint16,
  1.0 for floats, which must be in [0, 1] (a ``ValueError`` beyond
  [-0.01, 1.01], or for NaN: floats of 0..255 scored 0 dB in silence).
* ``crop`` drops that many pixels at each border first; super-resolution is
  scored with ``crop = scale``.
"""
from __future__ import annotations

import numbers

import cv2
import numpy as np

#: SSIM's Gaussian window: sigma 1.5 truncated at 3.5 sigma, as scikit-image's ``gaussian_weights``.
SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)
#: How far float images may stray outside [0, 1]: as far as restore.restore takes them (a restoration
#: is clipped; a noisy image rounded to float32 may pass by a hair).
FLOAT_SLACK = 0.01


def _prepare(reference: np.ndarray, image: np.ndarray, crop: int):
    reference, image = (np.asarray(a) for a in (reference, image))
    reference, image = (a.astype(a.dtype.newbyteorder("="), copy=False) for a in (reference, image))
    if reference.shape != image.shape:
        raise ValueError(f"reference shape {reference.shape} differs from image shape {image.shape}")
    if reference.dtype != image.dtype:
        raise ValueError(f"reference dtype {reference.dtype} differs from image dtype {image.dtype}")
    if reference.dtype.kind == "f":
        for name, array in (("reference", reference), ("image", image)):
            _check_floats(name, array)
    elif not (reference.dtype.kind == "u" and reference.dtype.itemsize in (1, 2)):     # either byte order
        # An integer's range is its dtype's: 0..255 held as int64 would be scored out of 2**63.
        raise ValueError(f"images of dtype {reference.dtype} cannot be scored: give uint8 (0..255), uint16 "
                         "(0..65535) or floats in [0, 1], e.g. image.astype(np.uint8) for 8-bit values")
    if isinstance(crop, bool) or not isinstance(crop, numbers.Integral):
        raise ValueError(f"crop must be a whole number of pixels, got {crop!r}")
    if crop < 0 or 2 * crop >= min(reference.shape[:2]):
        raise ValueError(f"crop {crop} does not fit an image of shape {reference.shape}{_layout_hint(reference)}")
    if crop:
        reference, image = reference[crop:-crop, crop:-crop], image[crop:-crop, crop:-crop]
    data_range = float(np.iinfo(reference.dtype).max) if reference.dtype.kind in "ui" else 1.0
    return reference, image, data_range


def _check_floats(name: str, array: np.ndarray) -> None:
    """A ``ValueError`` for float pixels outside [0, 1] (beyond :data:`FLOAT_SLACK`) or not finite."""
    if not array.size:
        return
    low, high = float(np.min(array)), float(np.max(array))      # NaN in either: NaN
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{name} has NaN or infinite values; float images must hold finite values in [0, 1]")
    if low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:
        raise ValueError(f"{name} holds floats from {low:.4g} to {high:.4g}; float images are scored as [0, 1]: "
                         "divide 8-bit values by 255 (or pass them as uint8)")


def _layout_hint(array: np.ndarray) -> str:
    """For what looks like a channels-first array ``(C, H, W)``: the layout the metrics take."""
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        return "; images are (H, W, C), this looks like (C, H, W): pass np.moveaxis(a, 0, -1)"
    return ""


def _channels(image: np.ndarray) -> list[np.ndarray]:
    """The ``(H, W)`` planes of an image (views)."""
    return [image] if image.ndim == 2 else [image[:, :, c] for c in range(image.shape[2])]


#: Rows the metrics convert to float64 at a time: a photograph of many megapixels is scored in a
#: few tens of megabytes (whole, its float64 copies took over a gigabyte at 12 MP).
BAND = 256


def psnr(reference: np.ndarray, image: np.ndarray, *, crop: int = 0) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images)."""
    reference, image, data_range = _prepare(reference, image, crop)
    squared = sum(float(np.sum(np.square(reference[top:top + BAND].astype(np.float64) - image[top:top + BAND])))
                  for top in range(0, reference.shape[0], BAND))
    mse = squared / max(reference.size, 1)
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim(reference: np.ndarray, image: np.ndarray, *, crop: int = 0) -> float:
    """Structural similarity in [-1, 1]; ``(H, W)`` or ``(H, W, C)`` arrays: the mean of the channels'."""
    reference, image, data_range = _prepare(reference, image, crop)
    side = 2 * SSIM_RADIUS + 1
    if min(reference.shape[:2]) < side:
        raise ValueError(f"SSIM needs images of at least {side}x{side} pixels, got "
                         f"{reference.shape[:2]}{_layout_hint(reference)}")
    return float(np.mean([_ssim_plane(r, i, data_range) for r, i in zip(_channels(reference), _channels(image))]))


def _ssim_plane(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """SSIM of two planes: the mean of the SSIM map, borders of the window's radius left out.

    Computed in bands of :data:`BAND` rows, each read with the window's radius of rows around it
    (the image's own border is reflected as for the whole plane), so the values are the whole
    plane's; in float64, as in float32 ``E[x^2] - E[x]^2`` cancels to errors of 1e-5 on flat areas.
    """
    r, (height, width) = SSIM_RADIUS, x.shape
    total = 0.0
    for top in range(r, height - r, BAND):
        bottom = min(top + BAND, height - r)
        low, high = max(top - r, 0), min(bottom + r, height)
        ssim_map = _ssim_map(x[low:high].astype(np.float64), y[low:high].astype(np.float64), data_range)
        total += float(ssim_map[top - low:bottom - low, r:width - r].sum())
    return total / ((height - 2 * r) * (width - 2 * r))


def _ssim_map(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM at every pixel of two float64 planes (Gaussian window, borders reflected), in place."""
    side = 2 * SSIM_RADIUS + 1

    def window(a):
        return cv2.GaussianBlur(a, (side, side), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mean_x, mean_y = window(x), window(y)
    var_x = window(x * x)
    var_x -= mean_x * mean_x
    var_y = window(y * y)
    var_y -= mean_y * mean_y
    cov = window(x * y)
    cov -= mean_x * mean_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    # (2 mx my + C1)(2 cov + C2) / ((mx^2 + my^2 + C1)(vx + vy + C2))
    cov *= 2
    cov += c2
    var_x += var_y
    var_x += c2
    similarity = mean_x * mean_y
    similarity *= 2
    similarity += c1
    similarity *= cov
    np.square(mean_x, out=mean_x)
    mean_x += np.square(mean_y, out=mean_y)
    mean_x += c1
    mean_x *= var_x
    similarity /= mean_x
    return similarity


def strict_json(value, *, indent: int = 2) -> str:
    """``value`` as strict JSON: a score that is not finite (the PSNR of an image identical to its
    reference is infinite) becomes ``null``, which every JSON reader accepts (``Infinity`` is not JSON)."""
    import json
    import math

    def finite(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [finite(x) for x in v]
        return v
    return json.dumps(finite(value), indent=indent, allow_nan=False)
