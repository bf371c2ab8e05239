"""The classical methods restore is measured against, from the libraries people use.

Each takes the damaged image as ``(H, W, C)`` float32 in [0, 1] and returns the
restored one. Parameters follow each library's documentation or the usual
rule of thumb for a known noise level; none was tuned on the benchmark images.
BM3D and wavelet denoising need the ``bench`` extra (``pip install -e .[bench]``).
"""
from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import torch

from .fidelity import anscombe, anscombe_inverse
from .images import to_integer
from .resize import imresize


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _f32(array: np.ndarray, like: np.ndarray) -> np.ndarray:
    return (array.astype(np.float32) / 255).reshape(like.shape[0], like.shape[1], -1)


# --- denoising (sigma in 0..255 units) ---------------------------------------------------------

def bm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D (the ``bm3d`` package): a colour image in its colour space, a grey one (or a colour one
    whose channels are all alike: a grey photograph stored as RGB) as its one channel. ``bm3d_rgb``
    scales each channel of its colour space by its range, which a channel without any (the colour
    differences of a grey image) turns to NaN: such an image's channels are denoised one by one."""
    import bm3d as lib
    level = sigma / 255
    if noisy.shape[2] == 3 and not (noisy == noisy[:, :, :1]).all():
        out = lib.bm3d_rgb(noisy, sigma_psd=level)
        if not np.isfinite(out).all():
            out = np.stack([lib.bm3d(noisy[:, :, c], sigma_psd=level) for c in range(3)], axis=2)
    else:
        out = np.repeat(np.asarray(lib.bm3d(noisy[:, :, 0], sigma_psd=level)).reshape(*noisy.shape[:2], 1),
                        noisy.shape[2], axis=2)
    return np.clip(out, 0, 1).astype(np.float32).reshape(noisy.shape)


def anscombe_bm3d(noisy: np.ndarray, a: float, b: float) -> np.ndarray:
    """BM3D under Poisson-Gaussian noise of variance ``a x + b``: the generalised Anscombe transform
    makes the noise unit-variance, BM3D removes it, and the closed-form approximation of the exact
    unbiased inverse brings it back (Makitalo & Foi 2013). ``a > 0``."""
    stable = anscombe(noisy.astype(np.float64), a, b)
    top = float(stable.max()) or 1.0
    smooth = bm3d((stable / top).astype(np.float32), 255 / top).astype(np.float64) * top
    return np.clip(anscombe_inverse(smooth, a, b), 0, 1).astype(np.float32)


def opencv_nlm(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """OpenCV's fast non-local means with filter strength h = sigma."""
    u8 = to_integer(noisy, 8)
    if noisy.shape[2] == 3:
        out = cv2.fastNlMeansDenoisingColored(u8, None, h=sigma, hColor=sigma)
    else:
        out = cv2.fastNlMeansDenoising(u8[:, :, 0], None, h=sigma)
    return _f32(out, noisy)


def skimage_tv(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Chambolle total variation with weight = sigma (in [0, 1] units)."""
    from skimage.restoration import denoise_tv_chambolle
    out = denoise_tv_chambolle(noisy, weight=sigma / 255, channel_axis=2)
    return out.astype(np.float32).reshape(noisy.shape)


def skimage_wavelet(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """BayesShrink soft thresholding, colour in YCbCr (scikit-image's documented example)."""
    from skimage.restoration import denoise_wavelet
    colour = noisy.shape[2] == 3
    out = denoise_wavelet(noisy if colour else noisy[:, :, 0], sigma=sigma / 255, method="BayesShrink",
                          mode="soft", rescale_sigma=True, convert2ycbcr=colour,
                          channel_axis=2 if colour else None)
    return np.clip(out, 0, 1).astype(np.float32).reshape(noisy.shape)


# --- inpainting (mask: True = missing) ---------------------------------------------------------

def opencv_telea(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return _f32(cv2.inpaint(to_integer(image, 8), mask.astype(np.uint8), 3, cv2.INPAINT_TELEA), image)


def median(image: np.ndarray, size: int) -> np.ndarray:
    """A photo editor's "dust and scratches": the median of a ``size`` x ``size`` window everywhere."""
    return _f32(cv2.medianBlur(to_integer(image, 8), size), image)


def tophat_telea(image: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Scratches and specks found by a morphological top-hat and black-hat of the luminance (a
    7-pixel disc; responses above ``threshold``, 25 levels), grown by a pixel and filled by Telea."""
    from .damage import thin_structures
    bright, dark = thin_structures(image)
    found = cv2.dilate(((bright > threshold) | (dark > threshold)).astype(np.uint8), np.ones((3, 3), np.uint8))
    return opencv_telea(image, found)


def opencv_navier_stokes(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return _f32(cv2.inpaint(to_integer(image, 8), mask.astype(np.uint8), 3, cv2.INPAINT_NS), image)


def skimage_biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic
    out = inpaint_biharmonic(image, mask, channel_axis=2)
    return np.clip(out, 0, 1).astype(np.float32)


# --- upscaling ---------------------------------------------------------------------------------

def bicubic(small: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscaling, MATLAB imresize convention (the benchmark's downsampler, inverted)."""
    t = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)
    up = imresize(t, (t.shape[1] * scale, t.shape[2] * scale))
    return up.clamp(0, 1).permute(1, 2, 0).numpy()


def lanczos(small: np.ndarray, scale: int) -> np.ndarray:
    h, w = small.shape[:2]
    out = cv2.resize(small, (w * scale, h * scale), interpolation=cv2.INTER_LANCZOS4)
    return np.clip(out, 0, 1).astype(np.float32).reshape(h * scale, w * scale, -1)


# --- deblurring (kernel: (kh, kw), sums to 1) ---------------------------------------------------

def skimage_wiener(blurred: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """scikit-image's unsupervised Wiener filter (it estimates the noise and image levels itself by
    sampling, seeded here), per channel."""
    from skimage.restoration import unsupervised_wiener
    return _per_channel(lambda c: unsupervised_wiener(c, kernel.astype(np.float64), rng=0)[0], blurred, kernel)


def skimage_richardson_lucy(blurred: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """scikit-image's Richardson-Lucy deconvolution with its default 50 iterations, per channel."""
    from skimage.restoration import richardson_lucy
    return _per_channel(lambda c: richardson_lucy(c, kernel.astype(np.float64)), blurred, kernel)


def _per_channel(deconvolve, blurred: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # Both assume what lies beyond the border (periodic, or zero): give them the image's
    # reflection there, as the blur had, and crop it off again.
    pad = max(kernel.shape)
    out = [deconvolve(np.pad(blurred[:, :, c].astype(np.float64), pad, mode="reflect"))[pad:-pad, pad:-pad]
           for c in range(blurred.shape[2])]
    return np.clip(np.stack(out, axis=2), 0, 1).astype(np.float32)
