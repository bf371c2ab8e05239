"""How much of an image lies near its Nyquist frequency: where next to nothing does (a soft edge, a
smooth swell), a plain interpolation draws the image to within a level, and a prior's own detail is
all error. ``superres`` takes the bicubic upscale there, ``inpaint`` the smooth fill."""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: Where :func:`band_ratio` stays under BAND_LIMITED within a radius, :func:`band_limited` is 1, fading
#: to 0 at BAND_RICH. A smooth image's ratio is 1/256, a photograph's texture 0.05 to 0.6. Chosen for
#: ``superres`` on held-out crops at x2 (the README, "What restore does to the pixels you gave it"),
#: and the same held for ``inpaint``.
BAND_LIMITED = 0.03
BAND_RICH = 0.045
#: The window (pixels) over which :func:`band_ratio` sums each band's energy.
BAND_WINDOW = 9
#: How far (pixels) around a pixel :func:`band_limited` asks the image to be band-limited.
BAND_RADIUS = 4
#: With ``observed`` (:func:`band_limited`), the share of a window's pixels that must be observed for
#: its ratio to count: inside a large hole the smooth fill is all there is, and says nothing. A window
#: that does not count is left out of the others' maximum (a pixel none reaches weighs 0), so a large
#: hole's rim, up to about 5 px in, follows what is seen around it, and its interior keeps the prior's.
SEEN_SHARE = 0.3


def band_limited(y: torch.Tensor, *, radius: int = BAND_RADIUS, observed: torch.Tensor | None = None) -> torch.Tensor:
    """``(N, 1, H, W)`` in [0, 1]: 1 where :func:`band_ratio` of ``y`` stays below
    :data:`BAND_LIMITED` within ``radius`` pixels, fading to 0 at :data:`BAND_RICH`. With
    ``observed`` ``(N or 1, 1, H, W)`` (1 where ``y`` was seen, the rest filled), a ratio counts only
    where its window sees :data:`SEEN_SHARE` of observed pixels or more; a pixel that no such window
    within ``radius`` reaches weighs 0."""
    ratio = band_ratio(y)
    if observed is not None:
        seen = F.avg_pool2d(observed.float(), BAND_WINDOW, 1, BAND_WINDOW // 2, count_include_pad=False)
        ratio = torch.where(seen >= SEEN_SHARE, ratio, torch.full_like(ratio, float("-inf")))
    ratio = F.max_pool2d(ratio, 2 * radius + 1, 1, radius)
    weight = ((BAND_RICH - ratio) / (BAND_RICH - BAND_LIMITED)).clamp(0, 1)
    return weight.masked_fill(ratio == float("-inf"), 0)


def band_ratio(y: torch.Tensor, *, window: int = BAND_WINDOW) -> torch.Tensor:
    """Per pixel of ``y`` (N, C, H, W), the energy of its fourth differences (along rows and columns,
    all channels; a filter of response ``sin(w/2)^4``, 1 at the Nyquist frequency) over the
    ``window`` (odd) around it, against that of the same differences two pixels apart
    (``sin(w)^4``, 1 an octave below). A smooth image gives 1/256, white noise 1; a floor of one
    level's energy in the second keeps a flat image's ratio near 0. Only differences that lie wholly
    inside ``y`` count (any padding makes a kink of an edge that meets the border); where none
    reaches, the ratio is infinite (nothing said). Computed in float32: give ``y`` at least that
    precise (a bf16 copy's rounding is about a level of noise, and reads as texture)."""
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

        near_out, octave_out = (F.conv2d(y, k.view(shape).expand(c, *shape[1:]), groups=c).square().sum(1, keepdim=True)
                                for k in (near, octave))
        near_energy += F.pad(near_out, back)
        octave_energy += F.pad(octave_out, back)
        count += F.pad(torch.ones_like(near_out), back)
    near_energy, octave_energy, count = (F.avg_pool2d(t, window, 1, window // 2)
                                         for t in (near_energy, octave_energy, count))
    ratio = near_energy / (octave_energy + count * 255.0**-2)
    return torch.where(count > 0, ratio, torch.full_like(ratio, float("inf")))
