"""Inpainting: ``A = diag(m)``, only the pixels outside the mask's holes are observed."""
from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field

import numpy as np

from .api import api_function
from .base import CLEAN_SIGMA, Companion, CompanionError, OptionError, SolverDefaults, Task, option


#: The most pixels ``--mask-dilate`` grows the holes by (a hole of twice that is no scratch's).
MAX_DILATE = 100


@dataclass(frozen=True)
class Inpaint(Task):
    name = "inpaint"
    summary = "Fill the white pixels of a mask."
    # Refine within the encoder's posterior of the smooth first fill, so codes under a large hole
    # stay where the encoder put them instead of shrinking to the mean (held-out crops). 7 steps:
    # on 9 held-out 256x256 crops (hole PSNR, bf16, 8-bit input) 30.538 / 15.939 / 22.845 dB with
    # half the pixels missing / the box / strokes against 30.533 / 15.969 / 22.843 with 10 steps
    # (and 10 was as good as 30), in 0.40-0.58 s instead of 0.53-0.80 s per crop. 5 steps scored
    # the same there but cost the digits prior 0.08 dB on the benchmark; 7 stay within 0.01 dB.
    defaults = SolverDefaults(steps=7, anchor="encoder")
    companion = Companion("mask", "Mask file (white = fill; an alpha-only mask works too), a folder of masks "
                                  "matched by name, or 'auto': find thin scratches, dust and specks and fill them.",
                          detectable=True)

    sigma: float = field(default=CLEAN_SIGMA, metadata=option("Noise of the known pixels in 0..255 units."))
    mask_dilate: int = field(default=0, metadata=option("Grow the holes by N pixels first.", "--mask-dilate"))
    sensitivity: float = field(default=1.0, metadata=option(
        "With --mask auto: above 1 finds fainter scratches and specks (and takes more texture for them), "
        "below 1 only clear ones.", detector=True))

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.mask_dilate, bool) or not isinstance(self.mask_dilate, numbers.Integral):
            raise OptionError("mask_dilate", f"must be a whole number of pixels, got {self.mask_dilate!r}")
        if not 0 <= self.mask_dilate <= MAX_DILATE:
            raise OptionError("mask_dilate", f"must be 0 to {MAX_DILATE} pixels, got {self.mask_dilate}")
        number = isinstance(self.sensitivity, numbers.Real) and not isinstance(self.sensitivity, bool)
        if not number or not 0 < self.sensitivity <= 100:
            raise OptionError("sensitivity", f"must be above 0 and at most 100 (1 is the default), got {self.sensitivity!r}")

    def detect(self, pixels, *, settings, progress=None, return_std=False):
        from ..damage import repair
        return repair(pixels, self, settings=settings, progress=progress, return_std=return_std)

    def companion_values(self, value, shape):
        from ..masks import dilate
        if value is None or isinstance(value, (str, os.PathLike)):
            raise CompanionError("inpainting needs a mask: an array (H, W), non-zero where pixels are missing, "
                                 f"or 'auto'{'' if value is None else f', got {value!r}'} (a mask file: "
                                 "restore.masks.missing_pixels(restore.images.read_image(path)))")
        mask = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
        mask = mask.reshape(mask.shape[:2]) if mask.ndim == 3 and mask.shape[2] == 1 else mask
        if mask.dtype.kind not in "biuf":      # text or objects are all "non-zero": every pixel a hole
            raise CompanionError(f"mask must hold numbers or booleans, got dtype {mask.dtype}; give 0 where pixels "
                                 "are kept, 1 where missing")
        if mask.ndim != 2:
            raise CompanionError(f"mask must be (H, W) or (H, W, 1), got shape {mask.shape}")
        if mask.dtype.kind == "f" and not np.isfinite(mask).all():
            raise CompanionError("mask has NaN or infinite values; give 0 where pixels are kept, 1 where missing")
        if mask.shape != tuple(shape):
            raise CompanionError(f"mask is {_size(mask.shape)} but the image is {_size(shape)}; "
                             "give a mask of the image's size")
        return dilate(mask != 0, self.mask_dilate).astype(np.float32)

    def map_variance(self, variance, companion):
        # Under a hole filled smoothly the encoder's posterior is as narrow as on a smooth
        # surface: the samples spread as much 30 px inside a box as next to its edge, while
        # the error grows with the distance to the nearest known pixel. Grow the variance
        # like a random walk's, (1 + d) times the samples' own at the pixel: photographs'
        # mean squared difference of two pixels d apart grows as d^0.88 up to 16 px (the
        # training photographs at 640 px). On 12 held-out 128x128 crops, Spearman of std
        # and error inside the holes 0.14 -> 0.65 (box), 0.48 -> 0.55 (strokes), 0.45 ->
        # 0.46 (half the pixels); errors within 2 std 58 % -> 87 % (box), 95 % -> 99 %.
        from scipy.ndimage import distance_transform_edt
        missing = companion > 0
        if not missing.any():
            return variance
        distance = distance_transform_edt(missing) if not missing.all() else np.full(missing.shape, max(missing.shape))
        return variance * (1 + distance)

    def read_companion(self, path, *, max_pixels):
        from ..images import ImageError, read_image
        from ..masks import is_zero_one_mask, missing_pixels
        mask = read_image(path, max_pixels=max_pixels)
        if is_zero_one_mask(mask):
            raise ImageError(f"{path}: a mask of 0 and 1, which marks no hole (holes are white); save it with 255 "
                             "(white) where to fill, e.g. as mask * 255")
        return missing_pixels(mask)

    def companion_note(self, companion):
        if not companion.any():
            return "its mask marks no pixel (holes are white): nothing to fill, the image is written as it is"
        if companion.all():
            return "its mask marks every pixel: nothing of the image is kept, the output is the prior's own drawing"
        return None

    def kept_pixels(self, companion):
        # Every pixel outside the (dilated) holes was given as it is: the output copies it.
        return companion == 0

    def skips_tile(self, companion):
        # A tile without a hole needs no restoring: the cost follows the holes, not the image.
        return not bool(companion.any())

    def physics(self, shape, companion):
        from ..physics import Inpainting
        return Inpainting(companion)

    def with_unseen_guessed(self, y, companion):
        from ..fill import coarse_fill
        return coarse_fill(y, 1 - companion)

    def first_guess(self, physics, y):
        from ..fill import fill_holes
        return fill_holes(y, physics.observed, unseen=None)     # a tile inside a hole: the coarse fill

    def refine(self, physics, y, first):
        import torch
        from ..bands import band_limited
        from ..fill import fill_holes, flat_holes
        observed = physics.observed
        flat = flat_holes(y, observed)
        # Where what is seen around a hole is band-limited (a soft edge, a smooth swell), the smooth
        # fill (first_guess) draws it to within a level, and the prior's own detail is all error:
        # saturated shapes with edges blurred by 3 px and half their pixels missing came back at
        # 40.4 dB in the holes, where this fill draws them at 59 (skimage's biharmonic 60.9). Read
        # on the fill where its window saw enough of the image: scattered pixels, thin strokes and
        # a large hole's rim; deeper in, the prior's fill.
        smooth = band_limited(first, observed=observed) * (1 - observed)
        takes_fill = bool(flat.any()) or bool(smooth.any())      # first: the smooth fill of y

        def carry_error_into_holes(x, d):
            # The decoder's errors are not white: they follow the image's structures, so the
            # error it makes at the observed pixels around a hole is the best guess of the
            # error it makes inside. Carry it over with the smooth fill (its conditional mean
            # under the fill's Gaussian model): a smooth fill of y plus the detail of D(z)
            # that a smooth fill of D(z) itself would miss.
            # Amid one colour the smooth fill is that colour, which a prior may not know.
            # A tile with no observed pixel (inside a large hole) has no error to carry.
            carried = x + (1 - observed) * fill_holes((x - d) * observed, observed, unseen=0.0)
            if not takes_fill:
                return carried
            fill = first.to(carried)
            return torch.where(flat, fill, torch.lerp(carried, fill, smooth.to(carried)))
        return carry_error_into_holes



def _size(shape) -> str:
    return f"{shape[1]}x{shape[0]}"


inpaint = api_function(Inpaint, "Fill the pixels where ``mask`` is non-zero; every pixel outside the "
                                "(dilated) mask is returned as it was given, bit for bit.",
                       companion_doc="Non-zero (True, white) where pixels are missing.")
