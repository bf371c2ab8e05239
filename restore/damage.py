"""Finding the damage nobody masked: thin scratches, dust specks and small spots on old photographs.

Three parts, each measured on its own (README, "Scratches and dust without a mask"):

1. Classical (:func:`thin_structure_strength`): a morphological top-hat (bright) and black-hat
   (dark) of the luminance with a disc a little wider than the damage keeps exactly the
   structures narrower than the disc. Each response is divided by how strong such responses are
   around it (their local median), so foliage, hair and fur, full of thin light and dark strokes,
   must stand out more than a scratch across a clear sky. Thresholded alone, with hysteresis, it
   gives :func:`damage_candidates`: most of the damage, and much texture with it.
2. Learned (:func:`find_damage`): a small network (:mod:`restore.detector`) reads the image and
   those two maps and tells which thin structures are painted over the photograph (gray, toward
   white or black, along a stroke or in a speck) and which belong to it, from the shapes around
   each pixel. It was trained on generated damage over the training photographs.
3. The prior and a second look (:func:`repair`): what the detector found is filled by the prior,
   and the network reads the image again with it filled: what the damage hid (a stretch of a
   scratch beside a speck) stands out there. Then all the damage found is filled, and every
   other pixel is kept as given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from .detector import DamageDetector

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


def _relative(response: np.ndarray, noise: float) -> np.ndarray:
    """A top-hat or black-hat response over its local median (plus the noise, in [0, 1] units)."""
    return response / (TEXTURE * _local_median(response) + FLOOR + 2 * noise)


def thin_structure_strength(pixels: np.ndarray, *, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(bright, dark)``: each pixel's top-hat and black-hat response over the local median of that
    response (plus the noise, ``noise`` in [0, 1] units), ``(H, W)`` each."""
    bright, dark = (_relative(response, noise) for response in thin_structures(pixels))
    return bright, dark


def damage_scores(pixels: np.ndarray, *, noise: float = 0.0) -> np.ndarray:
    """How clearly each pixel is thin bright or dark damage, ``(H, W)``: the larger of
    :func:`thin_structure_strength`'s two maps."""
    return np.maximum(*thin_structure_strength(pixels, noise=noise))


#: The classical maps: how much stronger than the thin structures around it damage must be, the
#: least contrast (in [0, 1] units) of damage on a flat surface, and the hysteresis thresholds of
#: :func:`damage_candidates`, chosen on 4 crops of 256 x 256 of the training photographs with
#: generated damage (runs of restore.masks.old_photo_damage, never the benchmark's images); a
#: 5-pixel disc lost 4.5 dB inside the damage (crossings missed).
TEXTURE = 3.0
FLOOR = 0.03
HIGH, LOW = 1.5, 0.75


def damage_candidates(pixels: np.ndarray, *, sensitivity: float = 1.0, noise: float = 0.0) -> np.ndarray:
    """Where thin scratches, dust specks and small spots, bright or dark, may be, by the classical
    maps alone: ``(H, W)`` booleans, most of the damage and much texture with it.

    Parameters
    ----------
    pixels : ndarray
        ``(H, W, C)`` or ``(H, W)`` floats in [0, 1].
    sensitivity : float
        Above 1 takes fainter structures; below 1, only clear ones.
    noise : float
        The image's noise level in [0, 1] units: noise is not damage.
    """
    if not sensitivity > 0:
        raise ValueError(f"sensitivity must be above 0, got {sensitivity}")
    from skimage.filters import apply_hysteresis_threshold
    return apply_hysteresis_threshold(damage_scores(pixels, noise=noise), LOW / sensitivity, HIGH / sensitivity)


#: The detector's log-odds a pixel needs to be taken for damage on its own, and (hysteresis) the
#: log-odds with which a pixel next to damage found joins it. Chosen on generated damage over
#: crops of the fifth of the training photographs the detector never saw and of the held-out
#: photographs (never the benchmark's): README, "Scratches and dust without a mask".
SURE = float(np.log(1.5))       # odds 1.5: a pixel half as likely again damaged as not
JOIN = 0.25                     # odds e^0.25 (1.28)


def find_damage(pixels: np.ndarray, *, noise: float = 0.0, sensitivity: float = 1.0,
                detector: DamageDetector | None = None) -> np.ndarray:
    """Where the detector (:mod:`restore.detector`) sees scratches, dust and specks: ``(H, W)``
    booleans. A pixel is damage where its log-odds plus ``log(sensitivity)`` are above
    :data:`SURE`, or above :data:`JOIN` and connected to such a pixel through pixels above
    :data:`JOIN` (hysteresis: a scratch is followed along its fainter stretches).

    Parameters
    ----------
    pixels : ndarray
        ``(H, W, C)`` floats in [0, 1], 1 or 3 channels.
    noise : float
        The image's noise level in [0, 1] units: noise is not damage.
    sensitivity : float
        Above 1 takes fainter damage (and more texture for it); below 1, only clear damage.
    detector : DamageDetector, optional
        The network that reads the image (default: the shipped one, ``pretrained/damage.pt``).
    """
    if not sensitivity > 0:
        raise ValueError(f"sensitivity must be above 0, got {sensitivity}")
    from skimage.filters import apply_hysteresis_threshold

    from .detector import damage_log_odds
    odds = damage_log_odds(pixels, noise=noise, detector=detector) + np.log(sensitivity)
    return apply_hysteresis_threshold(odds, JOIN, SURE)


#: Solver steps of the fill the second look reads (the kept fill takes the task's): the encoder's
#: fill alone served as well on the held-out crops (README, "Scratches and dust without a mask").
LOOK_STEPS = 0


@dataclass
class Repair:
    """What :func:`repair` returns: the restored pixels, the damage found, and the samples' spread."""
    pixels: np.ndarray               # (H, W, C) floats in [0, 1]
    mask: np.ndarray                 # (H, W) booleans, True on the damage found (and filled)
    std: np.ndarray | None = None    # (H, W), with settings.samples of 2 or more


def repair(pixels: np.ndarray, task, *, settings, progress=None, return_std: bool = False) -> Repair:
    """Find the damage in ``pixels`` (``(H, W, C)`` in [0, 1]) and fill it under ``task`` (an
    :class:`~restore.tasks.Inpaint`, whose ``sensitivity`` and ``mask_dilate`` apply).

    The damage :func:`find_damage` sees is filled by the prior's encoder (blind to a pixel around
    it too), and the detector looks again at the image with that damage filled: what the damage
    around it hid (a stretch of a scratch, a speck beside one) stands out there. Last, all the
    damage found (grown by ``mask_dilate``) is filled with the task's steps. Every pixel outside
    the returned mask is the input's, bit for bit.
    """
    from dataclasses import replace

    from .masks import dilate
    from .pipeline import restore
    noise = task.sigma / 255
    plain = replace(task, mask_dilate=0)
    steps = task.defaults.steps if settings.steps is None else settings.steps
    # The two fills' work per batch of tiles, as the pipeline counts it (restore.pipeline).
    bar = _Parts(progress, (LOOK_STEPS or 1, steps * (settings.ensemble or 1) or 1))

    found = find_damage(pixels, noise=noise, sensitivity=task.sensitivity)
    if not found.any():
        return Repair(pixels.copy(), found, np.zeros(pixels.shape[:2], np.float32) if return_std else None)
    # The fill the second look reads: a pixel around the damage is left out of what the prior sees,
    # so that the damage's fainter edges do not colour the fill (one speck missed beside a scratch
    # cost a crop 14 dB), and only the damage takes the fill.
    first = restore(pixels, plain, companion=dilate(found, 1), progress=bar.next(),
                    settings=replace(settings, steps=LOOK_STEPS, samples=1, ensemble=1))
    found = found | find_damage(np.where(found[:, :, None], first, pixels), noise=noise, sensitivity=task.sensitivity)
    found = dilate(found, task.mask_dilate)
    out = restore(pixels, plain, companion=found, settings=settings, progress=bar.next(), return_std=return_std)
    out, std = out if return_std else (out, None)
    # Every pixel outside the damage is the input's: certain, whatever the samples did there.
    return Repair(np.where(found[:, :, None], out, pixels), found, None if std is None else np.where(found, std, 0))


class _Parts:
    """One progress bar over the fills of :func:`repair`, in solver steps: ``next()`` is the next
    fill's callback. ``weights``: each fill's work per batch of tiles; the fills still to come are
    counted from the one under way in those proportions, so the total holds from the first report."""

    def __init__(self, progress, weights: tuple[int, ...]):
        self.progress, self.weights, self.before, self.current = progress, list(weights), 0, 0

    def next(self):
        if self.progress is None:
            return None
        self.before, self.current = self.before + self.current, 0
        weight, rest = self.weights[0], sum(self.weights[1:])
        self.weights = self.weights[1:]
        before = self.before

        def report(done: int, total: int):
            self.current = total
            self.progress(before + done, before + total + round(total * rest / weight))
        return report


def detect_damage(image, *, sensitivity: float = 1.0, sigma: float = 1.0, settings=None,
                  channel_axis: int = -1) -> np.ndarray:
    """Thin scratches, dust specks and small spots, bright or dark, that nobody masked: ``(H, W)``
    booleans, True on the damage (what ``inpaint --mask auto`` fills and ``--save-mask`` keeps).

    Parameters
    ----------
    image : ndarray or Tensor
        ``(H, W)`` or 1 or 3 channels on ``channel_axis``: uint8, uint16 or floats in [0, 1].
    sensitivity : float
        Above 1 finds fainter damage (and takes more texture for it); below 1, only clear damage.
    sigma : float
        The image's noise in 0..255 units: noise is not damage.
    settings : SolverSettings, optional
        The prior and solver that fill the damage found (default: the shipped photo prior).
    """
    from .pipeline import SolverSettings, to_pixels
    from .tasks import Inpaint
    task = Inpaint(sigma=sigma, sensitivity=sensitivity)
    pixels, _ = to_pixels(image, channel_axis)
    return repair(pixels, task, settings=settings or SolverSettings()).mask
