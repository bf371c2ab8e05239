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
#: Where the small image's energy near its Nyquist frequency, against its energy an octave below
#: (:func:`band_ratio`), stays under BAND_LIMITED within DETAIL_RADIUS, the upscale is the plain one
#: too; from BAND_RICH on, the prior's. A smooth image's ratio is 1/256, a photograph's texture
#: 0.05 to 0.6 (:meth:`Superres.refine`).
BAND_LIMITED = 0.03
BAND_RICH = 0.045
#: The window (small pixels) over which :func:`band_ratio` sums each band's energy.
BAND_WINDOW = 9


@dataclass(frozen=True)
class Superres(JPEGSource, Task):
    name = "superres"
    summary = "Upscale a low-resolution image (inverts antialiased bicubic downsampling)."
    # 20 steps: on 9 held-out crops (x4, bf16) 29.138 dB against 29.145 with 30 steps and 29.070
    # with 10, in 1.2 s instead of 2.0 s per 256x256 output.
    defaults = SolverDefaults(steps=20)

    sigma: float = field(default=CLEAN_SIGMA, metadata=option("Noise of the low-resolution pixels in 0..255 units."))
    factor: int = field(default=4, metadata=option("Upscaling factor: 2, 3, 4 or 8.", "--scale", "-s"))
    quantisation: Any = field(default=None, repr=False)     # a JPEG file's (JPEGSource.outer_task)

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.factor, bool) or not isinstance(self.factor, numbers.Integral) or self.factor not in SCALES:
            raise OptionError("scale", f"must be 2, 3, 4 or 8, got {self.factor!r}")

    @property
    def scale(self) -> int:
        return self.factor

    def resolve(self, pixels, companion=None):
        return super().resolve(pixels, companion).with_source(companion)

    def physics(self, shape, companion):
        from ..physics import Downsampling
        return Downsampling(shape, self.factor)

    def first_guess(self, physics, y):
        from ..resize import imresize
        return imresize(y, (y.shape[-2] * self.factor, y.shape[-1] * self.factor))

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
        ratio = F.max_pool2d(band_ratio(y), 2 * DETAIL_RADIUS + 1, 1, DETAIL_RADIUS)
        weight = torch.maximum(weight, ((BAND_RICH - ratio) / (BAND_RICH - BAND_LIMITED)).clamp(0, 1))
        if not bool(weight.any()):
            return None
        weight = weight.repeat_interleave(self.factor, -2).repeat_interleave(self.factor, -1)
        return lambda x, d: torch.lerp(x, first.to(x), weight.to(x))      # first: the bicubic upscale

    def input_estimate(self, damaged):
        from ..baselines import bicubic
        return bicubic(damaged, self.factor)



superres = api_function(Superres, "Upscale by ``scale`` (2, 3, 4 or 8), inverting antialiased bicubic "
                                  "downsampling; ``tile`` is in output pixels.")


def odd_padded(y, width: int):
    """``y`` padded by ``width`` on each side by extending each border's slope (``2 y[0] - y[k]``),
    so a ramp stays a ramp across its border (the edge value repeated is a kink, which reads as
    detail); repeated where a side is too short to reflect."""
    import torch.nn.functional as F
    padded = F.pad(y, (width,) * 4, mode="replicate")
    return 2 * padded - F.pad(y, (width,) * 4, mode="reflect") if min(y.shape[-2:]) > width else padded


def band_ratio(y, *, window: int = BAND_WINDOW):
    """Per pixel of ``y`` (N, C, H, W), the energy of its fourth differences (along rows and columns,
    all channels; a filter of response ``sin(w/2)^4``, 1 at the Nyquist frequency) over the
    ``window`` (odd) around it, against that of the same differences two pixels apart
    (``sin(w)^4``, 1 an octave below). A smooth image gives 1/256, white noise 1; a floor of one
    level's energy in the second keeps a flat image's ratio near 0. Only differences that lie wholly
    inside ``y`` count (any padding makes a kink of an edge that meets the border); where none
    reaches, the ratio is infinite (nothing said). Computed in float32: give ``y`` at least that
    precise (a bf16 copy's rounding is about a level of noise, and reads as texture)."""
    import torch
    import torch.nn.functional as F
    if window % 2 == 0:
        raise ValueError(f"window must be odd, got {window}")
    y = y.float()
    taps = torch.tensor([1.0, -4.0, 6.0, -4.0, 1.0], device=y.device) / 16
    near, octave = y.new_zeros(9), y.new_zeros(9)      # the same span, so both are valid at the same places
    near[2:7], octave[::2] = taps, taps
    length, half, c = len(octave), len(octave) // 2, y.shape[1]
    near_energy, octave_energy, count = (y.new_zeros(y.shape[0], 1, *y.shape[-2:]) for _ in range(3))
    for axis in (-1, -2):
        if y.shape[axis] < length:
            continue
        shape = (1, 1, 1, length) if axis == -1 else (1, 1, length, 1)
        back = (half, half, 0, 0) if axis == -1 else (0, 0, half, half)     # the valid outputs, in place

        def energy(kernel):
            out = F.conv2d(y, kernel.view(shape).expand(c, *shape[1:]), groups=c)
            return F.pad(out.square().sum(1, keepdim=True), back)
        near_energy += energy(near)
        octave_energy += energy(octave)
        valid = y.new_ones(y.shape[0], 1, *(n - (length - 1) if i == len(y.shape) + axis else n
                                            for i, n in enumerate(y.shape) if i >= 2))
        count += F.pad(valid, back)
    near_energy, octave_energy, count = (F.avg_pool2d(t, window, 1, window // 2)
                                         for t in (near_energy, octave_energy, count))
    ratio = near_energy / (octave_energy + count * 255.0**-2)
    return torch.where(count > 0, ratio, torch.full_like(ratio, float("inf")))
