"""Super-resolution: ``A`` is antialiased bicubic downsampling by an integer scale (MATLAB ``imresize``)."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

from .api import api_function
from .base import CLEAN_SIGMA, JPEGSource, OptionError, SolverDefaults, Task, option

SCALES = (2, 3, 4, 8)
#: Where every small pixel within DETAIL_RADIUS stays within SMOOTH levels (0..255) of its 3x3 mean
#: in every channel, the upscale is the plain one; from ROUGH on, the prior's (:meth:`Superres.refine`).
DETAIL_RADIUS = 4
SMOOTH = 4.0
ROUGH = 8.0


@dataclass(frozen=True)
class Superres(JPEGSource, Task):
    name = "superres"
    summary = "Upscale a low-resolution image (inverts antialiased bicubic downsampling)."
    # 20 steps: on 9 held-out crops (x4, bf16) 29.138 dB against 29.145 with 30 steps and 29.070
    # with 10, in 1.2 s instead of 2.0 s per 256x256 output.
    defaults = SolverDefaults(steps=20)

    sigma: float = field(default=CLEAN_SIGMA, metadata=option("Noise of the low-resolution pixels in 0..255 units."))
    # Named as Task.scale (restored pixels per observed pixel), which this field is.
    scale: int = field(default=4, metadata=option("Upscaling factor: 2, 3, 4 or 8.", "--scale", "-s"))
    quantisation: Any = field(default=None, repr=False)     # a JPEG file's (JPEGSource.outer_task)

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.scale, bool) or not isinstance(self.scale, numbers.Integral) or self.scale not in SCALES:
            raise OptionError("scale", f"must be 2, 3, 4 or 8, got {self.scale!r}")

    def resolve(self, pixels, companion=None):
        return super().resolve(pixels, companion).with_source(companion)

    def physics(self, shape, companion):
        from ..physics import Downsampling
        return Downsampling(shape, self.scale)

    def first_guess(self, physics, y):
        from ..resize import imresize
        return imresize(y, (y.shape[-2] * self.scale, y.shape[-1] * self.scale))

    def refine(self, physics, y, first):
        # Where the small image is smooth, the plain (bicubic) upscale is nearer the image than the
        # prior's, whose own detail is then all error: on held-out crops (never the benchmark) its
        # mean squared error where the detail within 4 small pixels stays below 4 levels was 7.41 /
        # 12.12 (1e-6) at x2 / x4 against bicubic's 6.35 / 9.91, and below 8 levels 11.82 / 15.17
        # against 11.66 / 13.46; at 12 the prior was ahead. A smooth gradient came back 1.2 / 2.6 dB
        # below bicubic, and the prior drew spots up to 48 levels off into a flat magenta at x4.
        # So the plain upscale where the detail is below SMOOTH, fading to the prior's at ROUGH.
        import torch
        import torch.nn.functional as F

        from ..bands import band_limited
        # Padded by extending each border's slope: a ramp is as smooth at the border as inside (the
        # edge value repeated put a step of a third of the slope there, and a small input of a steep
        # gradient, its border ring spread over it, went to the prior: 5-7 dB below bicubic at x4-x8).
        detail = (y - F.avg_pool2d(odd_padded(y, 1), 3, 1)).abs().amax(1, keepdim=True)
        detail = F.max_pool2d(detail, 2 * DETAIL_RADIUS + 1, 1, DETAIL_RADIUS) * 255
        weight = ((ROUGH - detail) / (ROUGH - SMOOTH)).clamp(0, 1)
        # A soft edge is not smooth, but it is band-limited: its small image holds next to nothing
        # near its own Nyquist frequency, and bicubic draws it to within a level where the prior
        # adds its own detail, all error (saturated colour shapes blurred by 2 / 3 px at x2: 41.0 /
        # 42.2 dB against bicubic's 52.4 / 61.1). Photographs' texture reaches there.
        weight = torch.maximum(weight, band_limited(y, radius=DETAIL_RADIUS))
        if not bool(weight.any()):
            return None
        weight = weight.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1)
        return lambda x, d: torch.lerp(x, first.to(x), weight.to(x))      # first: the bicubic upscale

    def input_estimate(self, damaged):
        from ..baselines import bicubic
        return bicubic(damaged, self.scale)



superres = api_function(Superres, "Upscale by ``scale`` (2, 3, 4 or 8), inverting antialiased bicubic "
                                  "downsampling; ``tile`` is in output pixels.")


def odd_padded(y, width: int):
    """``y`` padded by ``width`` on each side by extending each border's slope (``2 y[0] - y[k]``),
    so a ramp stays a ramp across its border (the edge value repeated is a kink, which reads as
    detail); repeated where a side is too short to reflect."""
    import torch.nn.functional as F
    padded = F.pad(y, (width,) * 4, mode="replicate")
    return 2 * padded - F.pad(y, (width,) * 4, mode="reflect") if min(y.shape[-2:]) > width else padded
