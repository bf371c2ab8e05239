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

from dataclasses import dataclass

import cv2
import numpy as np

#: Widths of damage found: structures up to 5 pixels across (a 7-pixel disc opens them away), so
#: that a speck on a scratch or two crossing scratches are found whole.
DISC = 7
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


#: How much stronger than the thin structures around it damage must be, the least contrast (in
#: [0, 1] units) of damage on a flat surface, the hysteresis thresholds of the score, and how
#: far from the prior's fill a candidate must be to stay damage. Chosen on 4 crops of 256 x 256
#: of the training photographs with generated damage (runs of restore.masks.old_photo_damage,
#: never the benchmark's images), as the best whole-image PSNR: tolerance 0.1 / 0.2 / 0.3 / 0.4
#: gave 32.3 / 35.5 / 38.0 / 36.8 dB (intact pixels 32.6 / 36.3 / 42.4 / 48.3 dB; recall 0.96 /
#: 0.90 / 0.87 / 0.81); a 5-pixel disc lost 4.5 dB inside the damage (crossings missed). With a
#: fifth image of pebbles and boats (samples/lake.png), where 19 % of the pixels were candidates:
#: without the crowd rule 35.0 dB whole, 38.5 dB on the intact pixels (the lake worse than its
#: input); with CROWD 0.3, 34.6 dB whole and 46.5 dB intact (recall 0.61); 0.1 and 0.05 lost
#: most of the damage (32.8 / 28.3 dB whole). What was fine stays fine: 0.3. Where the damage is
#: lost (7 images, misses weighted by their squared contrast): the hysteresis keeps 95-100 % of it,
#: the crowd rule drops half of it in pebbles, camels' fur and clutter (34-58 % kept there). Tried
#: and dropped: a tolerance growing with the local activity (intact pixels 30-41 dB for recall
#: 0.62-0.91), sparing long thin components from the crowd rule (no change: in texture a scratch
#: joins the texture's candidates).
TEXTURE = 3.0
FLOOR = 0.03
HIGH, LOW = 1.5, 0.75
TOLERANCE = 0.3
CROWD = 0.3


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
    found = apply_hysteresis_threshold(scores, LOW / sensitivity, HIGH / sensitivity)
    if CROWD:
        # Damage is sparse: where candidates crowd (pebbles, foliage), only the clearest stay.
        crowd = cv2.blur(found.astype(np.float32), (WINDOW, WINDOW), borderType=cv2.BORDER_REFLECT)
        found &= scores * sensitivity > HIGH * (1 + crowd / CROWD)
    return found


def confirm_damage(candidates: np.ndarray, filled: np.ndarray, observed: np.ndarray, *,
                   tolerance: float) -> np.ndarray:
    """The candidates the prior cannot explain: where the observed pixel is further than
    ``tolerance`` (in [0, 1] units) from the prior's fill in some channel. ``filled`` and
    ``observed`` are ``(H, W, C)`` floats in [0, 1]."""
    far = np.abs(filled.astype(np.float32) - observed.astype(np.float32))
    return candidates & (far.max(axis=2) > tolerance if far.ndim == 3 else far > tolerance)


@dataclass
class Repair:
    """What :func:`repair` returns: the restored pixels, the damage found, and the samples' spread."""
    pixels: np.ndarray               # (H, W, C) floats in [0, 1]
    mask: np.ndarray                 # (H, W) booleans, True on the damage found (and filled)
    std: np.ndarray | None = None    # (H, W), with settings.samples of 2 or more


def repair(pixels: np.ndarray, task, *, settings, progress=None, return_std: bool = False) -> Repair:
    """Find the damage in ``pixels`` (``(H, W, C)`` in [0, 1]) and fill it under ``task`` (an
    :class:`~restore.tasks.Inpaint`, whose ``sensitivity`` and ``mask_dilate`` apply).

    The candidates of :func:`detect_damage` are filled by the prior; those the fill explains
    (closer than the tolerance plus the noise) are given back as observed. A confirmed pixel's
    neighbours are then filled with it, and join it where they too are far from the fill: the
    edges of a scratch, fainter than its middle, are found from the middle. Every pixel outside
    the returned mask is the input's, bit for bit.
    """
    from dataclasses import replace

    from .masks import dilate
    from .pipeline import restore
    noise = task.sigma / 255
    tolerance = TOLERANCE / task.sensitivity + 3 * noise
    candidates = detect_damage(pixels, sensitivity=task.sensitivity, noise=noise)
    plain = replace(task, mask_dilate=0)
    if not candidates.any():
        return Repair(pixels.copy(), candidates, np.zeros(pixels.shape[:2], np.float32) if return_std else None)

    def part(k: int, parts: int):        # one progress bar over the fills
        return None if progress is None else (lambda done, total: progress(done + k * total, parts * total))
    parts = 3 if task.mask_dilate else 2
    fill = restore(pixels, plain, companion=candidates, settings=replace(settings, samples=1), progress=part(0, parts))
    found = confirm_damage(candidates, fill, pixels, tolerance=tolerance)
    grown = dilate(found, 1)
    out = restore(pixels, plain, companion=grown, settings=settings, progress=part(1, parts), return_std=return_std)
    out, std = out if return_std else (out, None)
    found = dilate(found | confirm_damage(grown, out, pixels, tolerance=tolerance), task.mask_dilate)
    if task.mask_dilate:                  # the user's wider holes: fill them as they asked
        out = restore(pixels, plain, companion=found, settings=settings, progress=part(2, parts), return_std=return_std)
        out, std = out if return_std else (out, None)
    return Repair(np.where(found[:, :, None], out, pixels), found, std)
