"""Finding the damage nobody masked: thin scratches, dust specks and small spots on old photographs.

Two parts, each measured on its own (README, "Scratches and dust without a mask"):

1. :func:`detect_damage`, classical: a morphological top-hat (bright) and black-hat (dark) of the
   luminance with a disc a little wider than the damage keeps exactly the structures narrower
   than the disc. Each response is divided by how strong such responses are around it (their
   local median), so foliage, hair and fur, full of thin light and dark strokes, must stand out
   far more than a scratch across a clear sky; hysteresis then follows a scratch along its
   fainter stretches from its clear ones.
2. :func:`confirm_damage`, the prior's part: the prior fills every candidate from its
   surroundings, and a candidate stays damage only where the observed pixel is further from
   that fill than the noise allows. Where the prior explains what was observed, the pixel is
   kept as it was given.
"""
from __future__ import annotations

import cv2
import numpy as np

#: Widths of damage found: structures up to 3 pixels across (a 5-pixel disc opens them away).
DISC = 5
#: The window (pixels) over which the local strength of thin structures is measured.
WINDOW = 31


def thin_structures(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(bright, dark)``: how far each pixel of the luminance stands above (below) the image opened
    (closed) with a :data:`DISC`-pixel disc; zero on everything wider than the disc."""
    luminance = pixels.mean(axis=2).astype(np.float32) if pixels.ndim == 3 else pixels.astype(np.float32)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (DISC, DISC))
    return (cv2.morphologyEx(luminance, cv2.MORPH_TOPHAT, disc, borderType=cv2.BORDER_REFLECT),
            cv2.morphologyEx(luminance, cv2.MORPH_BLACKHAT, disc, borderType=cv2.BORDER_REFLECT))


def _local_median(response: np.ndarray) -> np.ndarray:
    """The median of ``response`` (in [0, 1]) over a :data:`WINDOW` square around each pixel, in 1/1024 steps."""
    levels = np.clip(np.round(response * 1024), 0, 255).astype(np.uint8)     # responses above 1/4 saturate
    return cv2.medianBlur(levels, WINDOW).astype(np.float32) / 1024


def damage_scores(pixels: np.ndarray, *, noise: float = 0.0) -> np.ndarray:
    """How clearly each pixel is thin bright or dark damage: its top-hat or black-hat response
    over the local median of that response (plus the noise, ``noise`` in [0, 1] units), ``(H, W)``."""
    scores = []
    for response in thin_structures(pixels):
        scores.append(response / (TEXTURE * _local_median(response) + FLOOR + 2 * noise))
    return np.maximum(*scores)


#: How much stronger than the thin structures around it damage must be, and the least contrast
#: (in [0, 1] units) a pixel of damage has on a flat surface: chosen on crops of the training
#: photographs with generated damage (never the benchmark's images).
TEXTURE = 3.0
FLOOR = 0.03
HIGH, LOW = 2.0, 1.0


def detect_damage(pixels: np.ndarray, *, sensitivity: float = 1.0, noise: float = 0.0) -> np.ndarray:
    """Thin scratches, dust specks and small spots, bright or dark: ``(H, W)`` booleans, True on damage.

    Parameters
    ----------
    pixels : ndarray
        ``(H, W, C)`` or ``(H, W)`` floats in [0, 1].
    sensitivity : float
        Above 1 finds fainter damage (and more texture by mistake); below 1, only clear damage.
    noise : float
        The image's noise level in [0, 1] units: noise is not damage.
    """
    if not sensitivity > 0:
        raise ValueError(f"sensitivity must be above 0, got {sensitivity}")
    from skimage.filters import apply_hysteresis_threshold
    scores = damage_scores(pixels, noise=noise)
    return apply_hysteresis_threshold(scores, LOW / sensitivity, HIGH / sensitivity)


def confirm_damage(candidates: np.ndarray, filled: np.ndarray, observed: np.ndarray, *,
                   tolerance: float) -> np.ndarray:
    """The candidates the prior cannot explain: where the observed pixel is further than
    ``tolerance`` (in [0, 1] units) from the prior's fill in some channel. ``filled`` and
    ``observed`` are ``(H, W, C)`` floats in [0, 1]."""
    far = np.abs(filled.astype(np.float32) - observed.astype(np.float32))
    return candidates & (far.max(axis=2) > tolerance if far.ndim == 3 else far > tolerance)
