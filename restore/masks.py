"""Inpainting masks: reading which pixels are missing, and drawing holes to test and train on.

Masks are boolean ``(H, W)`` arrays, True where a pixel is missing.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from .images import Picture

HOLE_KINDS = ("pixels", "box", "scribbles", "scratches", "blobs")


def missing_pixels(mask: Picture) -> np.ndarray:
    """True where a mask image is nearer white than black (white = fill): a mask saved as a JPEG
    rings around its strokes, a few levels above black, which are no holes.

    A mask whose colour channels are uniform but which has an alpha channel
    is read from its alpha (alpha of half or more = fill).
    """
    values = mask.pixels.max(axis=2)
    if mask.alpha is not None and np.ptp(mask.pixels) == 0:
        values = mask.alpha
    return values >= 0.5


def is_zero_one_mask(mask: Picture) -> bool:
    """Whether a mask image holds black and the first level above it alone (0 and 1 of 255, or of
    65535): a mask of 0 and 1 saved as an image, whose holes (:func:`missing_pixels`) are none."""
    levels = np.unique(mask.pixels)
    return len(levels) == 2 and levels[0] == 0 and levels[1] * 255 <= 1 + 1e-6


def dilate(missing: np.ndarray, pixels: int) -> np.ndarray:
    """Grow the holes by ``pixels`` (a disc), to cover halos around scratches or text."""
    if pixels < 0:
        raise ValueError(f"dilation must be 0 or more pixels, got {pixels}")
    if pixels == 0:
        return missing
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(missing.astype(np.uint8), kernel) > 0


def draw_strokes(mask: np.ndarray, rng: np.random.Generator, count: int, thickness: Callable[[], int]) -> None:
    """Draw ``count`` straight strokes between random points into a uint8 or float mask, in place."""
    h, w = mask.shape
    for _ in range(count):
        p, q = rng.integers(0, [w, h]), rng.integers(0, [w, h])
        cv2.line(mask, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 1, int(thickness()))


def holes(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """The benchmark's holes: half the pixels at random, one centred rectangle (1/4 of each
    side), five strokes and a line of text; and, for timing, thin scratches over about 1 % of
    the pixels or round stains over about 10 %."""
    if kind == "pixels":
        return rng.random((h, w)) < 0.5
    mask = np.zeros((h, w), np.uint8)
    if kind == "box":
        mask[h * 3 // 8: h * 5 // 8, w * 3 // 8: w * 5 // 8] = 1
        return mask > 0
    if kind == "scratches":
        return _scratches(h, w, rng)
    if kind == "blobs":
        return _blobs(h, w, rng)
    if kind != "scribbles":
        raise ValueError(f"holes are one of {', '.join(HOLE_KINDS)}, got {kind!r}")
    thick = max(1, min(h, w) // 40)
    draw_strokes(mask, rng, 5, lambda: thick + 1)
    if min(h, w) >= 96:
        cv2.putText(mask, "restore 2026", (w // 16, h * 3 // 4), cv2.FONT_HERSHEY_SIMPLEX, w / 400, 1, thick + 1)
    return mask > 0


def _scratches(h: int, w: int, rng: np.random.Generator, share: float = 0.01) -> np.ndarray:
    """Thin scratches (1 to 3 pixels wide, as on an old print) until about ``share`` of the pixels are missing."""
    mask = np.zeros((h, w), np.uint8)
    while mask.mean() < share:
        draw_strokes(mask, rng, 1, lambda: rng.integers(1, 4))
    return mask > 0


def _blobs(h: int, w: int, rng: np.random.Generator, share: float = 0.10) -> np.ndarray:
    """Round stains of random sizes until about ``share`` of the pixels are missing."""
    mask = np.zeros((h, w), np.uint8)
    side = min(h, w)
    while mask.mean() < share:
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        cv2.circle(mask, centre, int(rng.integers(max(2, side // 60), max(3, side // 12))), 1, -1)
    return mask > 0


def random_holes(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Holes of a random kind and size, for training: scattered pixels (20-80 %), a rectangle
    (1/8 to 1/2 of each side), or one to four strokes."""
    mask = np.zeros((h, w), np.float32)
    kind = rng.integers(3)
    if kind == 0:
        mask[:] = rng.random((h, w)) < rng.uniform(0.2, 0.8)
    elif kind == 1:
        rh, rw = rng.integers(h // 8, h // 2 + 1), rng.integers(w // 8, w // 2 + 1)
        t, l = rng.integers(h - rh + 1), rng.integers(w - rw + 1)
        mask[t:t + rh, l:l + rw] = 1
    else:
        draw_strokes(mask, rng, int(rng.integers(1, 5)), lambda: rng.integers(1, max(2, h // 10)))
    return mask > 0


def old_photo_damage(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Damage as an old print carries it: curved scratches 1-2 px wide and dust specks of 1-3 px,
    white or dark, painted over ``clean`` (``(H, W, C)`` in [0, 1]) at 70-100 % opacity.

    About 6 scratches and 50 specks per 256 x 256 pixels. Returns the damaged image and the damage:
    True where a scratch or speck moved a pixel by more than 8 levels (a scratch as light as the
    sky it crosses is no damage to find).
    """
    h, w = clean.shape[:2]
    area = h * w / 256 ** 2
    colour = np.zeros((h, w), np.float32)
    opacity = np.zeros((h, w), np.float32)

    def paint(draw) -> None:
        layer = np.zeros((h, w), np.uint8)
        draw(layer)
        where = layer > 0
        colour[where] = rng.uniform(0.85, 1.0) if rng.random() < 0.5 else rng.uniform(0.0, 0.15)
        opacity[where] = rng.uniform(0.7, 1.0)

    for _ in range(max(1, round(6 * area))):
        # A scratch: a smooth curve (a quadratic Bezier) across a good part of the image.
        start = rng.uniform(0, [w, h])
        end = np.clip(start + rng.normal(0, 0.4 * max(h, w), 2), 0, [w - 1, h - 1])
        bend = (start + end) / 2 + rng.normal(0, 0.15 * max(h, w), 2)
        t = np.linspace(0, 1, 64)[:, None]
        curve = ((1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t ** 2 * end).round().astype(np.int32)
        paint(lambda layer: cv2.polylines(layer, [curve], False, 1, int(rng.integers(1, 3))))
    for _ in range(max(1, round(50 * area))):
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        size = int(rng.integers(1, 4))
        paint(lambda layer: cv2.rectangle(layer, centre, (centre[0] + size - 1, centre[1] + size - 1), 1, -1)
              if size < 3 else cv2.circle(layer, (centre[0] + 1, centre[1] + 1), 1, 1, -1))
    alpha = opacity[:, :, None]
    damaged = (1 - alpha) * clean + alpha * colour[:, :, None]
    return damaged.astype(np.float32), np.abs(damaged - clean).max(axis=2) > 8 / 255
