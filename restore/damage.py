"""Finding the damage nobody masked: thin scratches, dust specks and small spots on old photographs.

Two parts, each measured on its own (README, "Scratches and dust without a mask"):

1. :func:`damage_candidates`, classical: a morphological top-hat (bright) and black-hat (dark) of
   the luminance with a disc a little wider than the damage keeps exactly the structures narrower
   than the disc. Each response is divided by how strong such responses are around it (their
   local median), so foliage, hair and fur, full of thin light and dark strokes, must stand out
   more than a scratch across a clear sky; hysteresis then follows a scratch along its fainter
   stretches from its clear ones. The candidates are generous: texture is sorted out next.
2. :func:`classify_candidates`, with the prior: the prior fills every candidate from its
   surroundings, and a candidate is damage where the evidence says so (:data:`EVIDENCE`: how
   clearly thin it is, how crowded its neighbourhood, how far it stands beyond the fill, how much
   grayer than the fill, how near white or black, and whether a wider shape as bright or dark sits
   beside it), weighed by a logistic regression fitted on generated damage over the training
   photographs (gray images by weights of their own). Every other pixel is kept as given.
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


def _relative(response: np.ndarray, noise: float) -> np.ndarray:
    """A top-hat or black-hat response over its local median (plus the noise, in [0, 1] units)."""
    return response / (TEXTURE * _local_median(response) + FLOOR + 2 * noise)


def damage_scores(pixels: np.ndarray, *, noise: float = 0.0) -> np.ndarray:
    """How clearly each pixel is thin bright or dark damage: its top-hat or black-hat response
    over the local median of that response (plus the noise, ``noise`` in [0, 1] units), ``(H, W)``."""
    return np.maximum(*(_relative(response, noise) for response in thin_structures(pixels)))


#: The candidates: how much stronger than the thin structures around it damage must be, the
#: least contrast (in [0, 1] units) of damage on a flat surface, and the hysteresis thresholds of
#: the score, chosen on 4 crops of 256 x 256 of the training photographs with generated damage
#: (runs of restore.masks.old_photo_damage, never the benchmark's images); a 5-pixel disc lost
#: 4.5 dB inside the damage (crossings missed). The candidates are generous: on 7 held-out crops
#: with such damage, 1 to 32 % of the pixels, holding on average 96.5 % of its squared contrast.
#: :func:`classify_candidates` then decides; TOLERANCE is how far from the prior's fill a neighbour
#: of damage found must be to join it (a scratch's fainter edges).
TEXTURE = 3.0
FLOOR = 0.03
HIGH, LOW = 1.5, 0.75
TOLERANCE = 0.3


def damage_candidates(pixels: np.ndarray, *, sensitivity: float = 1.0, noise: float = 0.0) -> np.ndarray:
    """Where thin scratches, dust specks and small spots, bright or dark, may be: ``(H, W)``
    booleans, a generous superset of the damage (texture included) that :func:`classify_candidates`
    sorts with the prior's fill.

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


#: What says a candidate is damage, one ``(H, W)`` map each (:func:`damage_evidence`): ``score``, the
#: log of its :func:`damage_scores`; ``crowd``, the share of candidates in the WINDOW around it (damage
#: is sparse, texture is not); ``toward``, how far its luminance stands beyond the prior's fill on its
#: side (brighter for a bright candidate, darker for a dark one); ``chroma_drop``, how much less colourful
#: it is than the fill (scratches and dust are gray); ``extreme``, its luminance's distance to white for a
#: bright candidate, to black for a dark one; ``beside``, how much brighter (darker) than it the
#: widest structure within BESIDE pixels is: near zero or above at the rim or corner of a wide
#: bright (dark) shape, well below zero beside a scratch across a darker (lighter) ground.
EVIDENCE = ("score", "crowd", "toward", "chroma_drop", "extreme", "beside")
BESIDE = 5


def damage_evidence(pixels: np.ndarray, candidates: np.ndarray, fill: np.ndarray, *, noise: float = 0.0) -> np.ndarray:
    """The :data:`EVIDENCE` of every pixel, ``(H, W, 6)``: ``pixels`` and ``fill`` (the prior's fill of
    ``candidates``) are ``(H, W, C)`` floats in [0, 1], ``noise`` in [0, 1] units."""
    luminance, filled = pixels.mean(axis=2), fill.mean(axis=2)
    top, black = thin_structures(pixels)
    bright, dark = _relative(top, noise), _relative(black, noise)
    is_bright = bright >= dark
    near = np.ones((BESIDE, BESIDE), np.uint8)
    # The widest structures next to the pixel: what the disc's opening (closing) left, at its brightest (darkest).
    beside_bright = cv2.dilate(luminance - top, near) - luminance
    beside_dark = luminance - cv2.erode(luminance + black, near)
    chroma = lambda image: image.max(axis=2) - image.min(axis=2)
    crowd = cv2.blur(candidates.astype(np.float32), (WINDOW, WINDOW), borderType=cv2.BORDER_REFLECT)
    return np.stack([np.log(np.maximum(bright, dark) + 1e-3), crowd,
                     np.where(is_bright, luminance - filled, filled - luminance),
                     chroma(fill) - chroma(pixels),
                     np.where(is_bright, 1 - luminance, luminance),
                     np.where(is_bright, beside_bright, beside_dark)], axis=-1).astype(np.float32)


#: The log-odds that a candidate is damage: EVIDENCE_BIAS + the evidence (in the order of EVIDENCE)
#: times EVIDENCE_WEIGHTS, for colour images and, with no colour to tell gray damage by, for gray ones.
#: A logistic regression fitted by ``pretrained/fit_damage_classifier.py`` on the candidates of 60
#: colour crops and 40 crops turned gray of the training photographs with generated damage (a third
#: of them with noise), each weighted by what a mistake costs in squared error: a damaged pixel left,
#: its contrast; an intact one filled, how far the fill is from it. Held-out folds of those crops
#: (sums of squared errors): colour 4664, where the rule it replaced (only the clearest candidates
#: where they crowd, then a fixed distance of 0.3 from the fill) cost 8095, filling every candidate
#: 14402 and none 20474; gray 2233, against 3356, 4321 and 8848.
EVIDENCE_WEIGHTS = {"colour": np.array([0.6871, -6.621, 1.258, 13.49, -3.421, -2.289], np.float32),
                    "gray": np.array([0.7306, -6.306, -0.7851, 0, -6.26, -4.767], np.float32)}
EVIDENCE_BIAS = {"colour": -0.1801, "gray": 1.115}
#: The log-odds a candidate needs to be taken for damage on its own; a candidate more likely damage
#: than not joins damage it touches. Chosen on images of our own with generated damage, 16 other
#: crops of the training photographs and 7 held-out crops, in colour and turned gray (mean
#: whole-image PSNR of the 23; intact pixels of the 16 / the 7): colour 34.31 dB (44.4 / 43.8) at
#: 1.0, 34.44 dB (47.6 / 45.9) at 1.5, 33.68 dB at 2.0; gray 32.57 dB at 1.0, 32.16 dB at 1.5.
SURE = {"colour": 1.5, "gray": 1.0}


def classify_candidates(pixels: np.ndarray, candidates: np.ndarray, fill: np.ndarray, *, noise: float = 0.0,
                        sensitivity: float = 1.0) -> np.ndarray:
    """The candidates that are damage: those whose odds (:data:`EVIDENCE_WEIGHTS`), times
    ``sensitivity``, are above ``exp(SURE)``, and the candidates above even odds they touch.
    ``pixels`` and ``fill`` are ``(H, W, C)`` floats in [0, 1]; a gray image (one channel, or
    three that agree) is weighed without colour."""
    from skimage.filters import apply_hysteresis_threshold
    kind = "gray" if pixels.shape[2] == 1 or np.ptp(pixels, axis=2).max() < 2 / 255 else "colour"
    odds = damage_evidence(pixels, candidates, fill, noise=noise) @ EVIDENCE_WEIGHTS[kind] + EVIDENCE_BIAS[kind]
    odds = np.where(candidates, odds + np.log(sensitivity), -np.inf)
    return apply_hysteresis_threshold(odds, 0.0, SURE[kind])


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

    The candidates of :func:`damage_candidates` are filled by the prior and sorted by
    :func:`classify_candidates`; the rest are given back as observed. A pixel found damaged has its
    neighbours filled with it, and they join it where they too are far from the fill (further than
    :data:`TOLERANCE` plus the noise): the edges of a scratch, fainter than its middle, are found from
    the middle. Every pixel outside the returned mask is the input's, bit for bit.
    """
    from dataclasses import replace

    from .masks import dilate
    from .pipeline import restore
    noise = task.sigma / 255
    tolerance = TOLERANCE / task.sensitivity + 3 * noise
    candidates = damage_candidates(pixels, sensitivity=task.sensitivity, noise=noise)
    plain = replace(task, mask_dilate=0)
    if not candidates.any():
        return Repair(pixels.copy(), candidates, np.zeros(pixels.shape[:2], np.float32) if return_std else None)

    def part(k: int, parts: int):        # one progress bar over the fills
        return None if progress is None else (lambda done, total: progress(done + k * total, parts * total))
    parts = 3 if task.mask_dilate else 2
    fill = restore(pixels, plain, companion=candidates, settings=replace(settings, samples=1), progress=part(0, parts))
    found = classify_candidates(pixels, candidates, fill, noise=noise, sensitivity=task.sensitivity)
    grown = dilate(found, 1)
    out = restore(pixels, plain, companion=grown, settings=settings, progress=part(1, parts), return_std=return_std)
    out, std = out if return_std else (out, None)
    found = dilate(found | confirm_damage(grown, out, pixels, tolerance=tolerance), task.mask_dilate)
    if task.mask_dilate:                  # the user's wider holes: fill them as they asked
        out = restore(pixels, plain, companion=found, settings=settings, progress=part(2, parts), return_std=return_std)
        out, std = out if return_std else (out, None)
    return Repair(np.where(found[:, :, None], out, pixels), found, std)


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
        The prior and solver that fill the candidates (default: the shipped photo prior).
    """
    from .pipeline import SolverSettings, to_pixels
    from .tasks import Inpaint
    task = Inpaint(sigma=sigma, sensitivity=sensitivity)
    pixels, _ = to_pixels(image, channel_axis)
    return repair(pixels, task, settings=settings or SolverSettings()).mask
