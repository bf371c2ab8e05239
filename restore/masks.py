"""Inpainting masks: which pixels are missing."""
from __future__ import annotations

import cv2
import numpy as np

from .images import Picture


def missing_pixels(mask: Picture, *, dilate: int = 0) -> np.ndarray:
    """Boolean ``(H, W)`` map, True where the mask is non-zero (white = fill).

    A mask whose colour channels are uniform but which has an alpha channel
    is read from its alpha (non-zero alpha = fill). ``dilate`` grows the holes
    by that many pixels, to cover halos around scratches or text.
    """
    values = mask.pixels.max(axis=2)
    if mask.alpha is not None and np.ptp(mask.pixels) == 0:
        values = mask.alpha
    missing = values > 0
    if dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
        missing = cv2.dilate(missing.astype(np.uint8), kernel) > 0
    return missing
