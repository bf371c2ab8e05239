"""The checks that keep a restoration consistent with what was observed under Gaussian noise: the
decoder's scale grown where the data say it is wrong, local means the noise can explain, and the
clipped and truncated Gaussian means they rest on."""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F

from ..physics import LinearPhysics


#: Side of the window (observed pixels) over which the decoder's residual is compared with the noise.
CONSISTENCY_WINDOW = 7
#: How far the residual's local mean square must exceed what the noise and the decoder's own scale
#: allow before the scale grows to explain it.
CONSISTENCY_THRESHOLD = 1.5


def consistent_scale(d: torch.Tensor, g, y: torch.Tensor, physics: LinearPhysics, sigma) -> torch.Tensor:
    """The decoder's scale ``g``, grown where the data say the decoder is wrong.

    The decoder's scale is learned on the photographs the prior saw; on what it cannot draw (a
    saturated colour, a pattern) it can be far too sure, and the x-step would then rewrite the
    observation with ``D(z)``. Under the model, the residual ``y - A(D(z))`` has a mean square of
    about ``sigma^2 + g^2``; where its local mean square ``m`` (a window of
    :data:`CONSISTENCY_WINDOW` observed pixels, per channel, spread onto the image's pixels) is
    beyond :data:`CONSISTENCY_THRESHOLD` times that, the decoder's error variance is taken as
    what the noise does not explain, ``m - sigma^2``. There the x-step keeps the data, as an
    empirical Wiener filter would; where the decoder explains the data nothing changes.

    Only where the data pin the pixels down (``physics.well_posed``): under a blur the data
    cannot say which pixel the decoder got wrong, and a larger scale there only lets the x-step
    deconvolve the noise.
    """
    variance = torch.as_tensor(g, dtype=d.dtype, device=d.device) ** 2
    if not physics.well_posed:
        return variance.sqrt()
    sigma = torch.as_tensor(sigma, dtype=d.dtype, device=d.device)
    local_mean = _local_mean(physics.A(torch.ones_like(d)), CONSISTENCY_WINDOW)
    local = physics.spread(local_mean((y - physics.A(d)) ** 2))
    noise = physics.spread(local_mean((sigma**2).expand_as(y))) if sigma.dim() else sigma**2
    grown = torch.where(local > CONSISTENCY_THRESHOLD * (noise + variance), torch.maximum(variance, local - noise),
                        variance)
    return grown.sqrt()


#: Side of the window (observed pixels) whose mean residual is tested against the noise.
MEAN_WINDOW = 15
#: Standard errors of the noise's window mean that a mean residual may reach before it is corrected.
MEAN_TOLERANCE = 3.0
#: Newton steps of the correction.
NEWTON_STEPS = 3


def consistent_means(x: torch.Tensor, y: torch.Tensor, physics: LinearPhysics, sigma) -> torch.Tensor:
    """``x`` corrected so that the residual ``y - A(x)`` has a local mean the noise can explain.

    Noise averages out: over a window of ``n`` observed pixels its mean has a standard error of
    ``sigma / sqrt(n)``. A larger mean residual is the restoration's doing -- a colour or a
    brightness the decoder cannot draw -- and is given back to the image, less the tolerance
    (:data:`MEAN_TOLERANCE` standard errors over :data:`MEAN_WINDOW`-pixel windows, per channel).
    Forward models that keep a constant (every one here: each observed pixel is a weighted mean
    of image pixels) take the correction through as it is.
    """
    k = MEAN_WINDOW
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    local_mean = _local_mean(physics.A(torch.ones_like(x)), k)
    level = local_mean((sigma**2).expand_as(y)).sqrt() if sigma.dim() else sigma
    # Newton steps through the clipping: near 0 or 1 a change of the image moves the mean of what
    # is observed less than itself, and by how much depends on where the image is, so one step
    # from far off stops short of the tolerance.
    for _ in range(NEWTON_STEPS):
        expected, slope = clipped_mean(physics.A(x), sigma)
        mean = local_mean(y - expected)
        excess = mean.sign() * (mean.abs() - MEAN_TOLERANCE * level / k).clamp_min(0)
        if not bool(excess.any()):      # every local mean explained: nothing (more) to correct
            break
        x = x + physics.spread_signed(excess / local_mean(slope).clamp_min(0.1))
    return x


def _local_mean(weight: torch.Tensor, k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function that gives the mean of ``v`` (``weight``'s shape, or one that broadcasts to it)
    over each ``k`` x ``k`` window (``k`` odd) of observations, weighted by ``weight`` (``A`` of an
    image of ones: 0 where an observation is missing, as under an inpainting hole), 0 where a window
    holds none; the windows' weights are summed once for all the ``v`` it is given."""
    total = _box_sums(weight, k)
    return lambda v: torch.where(total > 1e-6, _box_sums(v * weight, k) / total.clamp_min(1e-6), 0).to(v.dtype)


def _box_sums(t: torch.Tensor, k: int) -> torch.Tensor:
    """The sums of ``t`` (N, C, H, W) over each ``k`` x ``k`` window centred on a pixel (``k`` odd; the
    image's outside counts 0), in float32 at least: differences of running sums, a few operations a
    pixel whatever ``k`` (a box filter reads ``k`` per pixel and axis; five times the time at 15)."""
    out = t if t.dtype == torch.float64 else t.float()
    for dim in (-1, -2):
        n = out.shape[dim]
        pad = [0, 0] * (-dim - 1) + [k // 2 + 1, k // 2]
        running = F.pad(out, pad).cumsum(dim)
        out = running.narrow(dim, k, n) - running.narrow(dim, 0, n)
    return out


def mean_within(mu: torch.Tensor, low: torch.Tensor, high: torch.Tensor, sigma) -> torch.Tensor:
    """The mean of ``N(mu, sigma^2)`` cut to ``[low, high]`` (``low < high``, ``sigma > 0``), in it.

    Computed on whichever side of ``mu`` holds less of the interval, with log-CDFs, so an interval
    far in a tail still gives its mean (near the edge facing ``mu``), not 0 / 0.
    """
    a, b = (low - mu) / sigma, (high - mu) / sigma
    upper = a + b > 0                   # mirrored, the interval lies at or below mu's side
    a, b = torch.where(upper, -b, a), torch.where(upper, -a, b)
    log_b = torch.special.log_ndtr(b)
    log_mass = log_b + torch.log1p(-torch.exp((torch.special.log_ndtr(a) - log_b).clamp(max=-1e-12)))
    shift = (torch.exp(-a**2 / 2 - log_mass) - torch.exp(-b**2 / 2 - log_mass)) / (2 * torch.pi) ** 0.5
    mean = mu + sigma * torch.where(upper, -shift, shift)
    return torch.maximum(torch.minimum(mean, high), low)


def clipped_mean(mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``E[clip(mu + n, 0, 1)]`` for ``n ~ N(0, sigma^2)``, and its derivative in ``mu``.

    Files hold pixels in [0, 1], so the noise of a saturated colour is cut off on one side and
    its mean moves inwards (by 4 levels in 255 at 0 or 255 under noise of 10): a consistent
    restoration is compared with that mean, not with ``mu`` itself.
    """
    s = sigma.clamp_min(1e-6)
    a, b = (0 - mu) / s, (1 - mu) / s
    ndtr = lambda t: 0.5 * torch.erfc(-t * 0.5**0.5)     # as torch.special.ndtr, 5x faster on a CPU
    cdf_a, cdf_b = ndtr(a), ndtr(b)
    pdf_a, pdf_b = torch.exp(-a**2 / 2) / (2 * torch.pi) ** 0.5, torch.exp(-b**2 / 2) / (2 * torch.pi) ** 0.5
    return (1 - cdf_b) + mu * (cdf_b - cdf_a) + s * (pdf_a - pdf_b), cdf_b - cdf_a
