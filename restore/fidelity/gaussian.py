"""Gaussian noise of one level or one per observed pixel (:class:`Gaussian`), and the Wiener
deconvolution its filter takes under a blur (:func:`deconvolution`)."""
from __future__ import annotations

import functools
import numbers

import numpy as np
import torch
from torch.nn import functional as F

from ..data import is_grey, to_gray
from ..physics import Blur, Denoising, LinearPhysics, smooth_inverse
from ..wiener import WINDOW, empirical_wiener, hard_thresholded, windowed_wiener
from .base import DataTerm
from .consistency import clipped_mean, consistent_means, consistent_scale


#: The white noise level (0..1 units) up to which the Wiener filter takes one pass more (a colour
#: image's third, a grey one's second: :meth:`Gaussian.wiener_passes`). It was 22 (between the measured
#: 20 and 25) until the first pass's pilot took BM3D's first stage (:meth:`Gaussian.pilot`), a better
#: pilot, after which the extra pass gained less: on the held-out crops (6 of 256px / 12 of 128px) a
#: colour image's third pass +0.07 / +0.02 dB at sigma 10, +0.02 / -0.03 at 15, -0.01 / -0.05 at 20, and
#: -0.03 / -0.03 under the sensor's stabilised noise (19.9); a grey one's second +0.14 / -0.02 at 10,
#: +0.06 / -0.08 at 15, -0.01 / -0.09 at 20. Hence between 10 and 15.
LOW_NOISE = 12 / 255
#: The share of BM3D's first stage in the Wiener filter's first pilot (:meth:`Gaussian.pilot`), chosen
#: on held-out crops (never the benchmark) with groups of 16 (BM3D's own) before they grew: 0.5 / 0.7
#: / 1.0 gave +0.06 / +0.06 / +0.03 dB at sigma 15, +0.13 / +0.12 / +0.06 at 25, -0.02 / -0.07 / -0.16
#: at 50 and +0.02 / +0.01 / -0.02 under the benchmark's sensor noise, on 6 colour crops of 256px.
PILOT_SHARE = 0.5
#: How many levels of the noise a denoised pixel may stand from its observation (:meth:`Gaussian.bounded`).
NOISE_REACH = 5.0
#: The white noise level (0..1 units) up to which the first pilot takes BM3D's first stage: its gain
#: on the held-out crops (6 colour of 256px / 12 of 128px) fades from +0.16 / +0.08 dB at sigma 25
#: and +0.11 / +0.02 at 35 to +0.03 / -0.02 at 50, where it is not worth its time.
FIRST_STAGE_NOISE = 40 / 255


#: A deblurring's first pilot (:meth:`Gaussian.pilot`) is the prior's estimate mixed with BM3D's first stage
#: of the data's regularised inverse (:func:`deconvolution` with :data:`PILOT_SMOOTHNESS`), all of it
#: for a blur of at most the first width (:attr:`restore.physics.Blur.width`, pixels), none from the
#: second, in proportion between. Chosen on the 12 held-out crops of 128px (never the benchmark), dB
#: gained by the first stage's share 0.5 / 1 against none: Gaussian 0.5 / 0.7 / 1 / 1.5 with noise 1,
#: +0.81 / +2.17, +1.21 / +2.49, +0.44 / +0.53, +0.01 / -0.31; Gaussian 0.7 with noise 2.55 / 5 +0.84 /
#: +1.38, +0.52 / +0.75; Gaussian 1 with noise 5 +0.18 / +0.12; Gaussian 2 with noise 2.55 -0.05 / -0.40;
#: motion 3 px with noise 1 / 2.55 +0.72 / +1.07, +0.59 / +0.76; 5 px with noise 1 +0.51 / +0.52;
#: 15 px at 30 degrees with noise 2.55 -0.23 / -0.79. Under light blur the prior's estimate carries noise
#: the deconvolution amplified, which the first stage, thresholding where the data are sure, does not.
DATA_PILOT_WIDTHS = (1.0, 2.0)
#: The regularised inverse's smoothness weight per unit of noise variance (as restore.physics.wiener's,
#: far lighter: this inverse is thresholded after). On the held-out crops, the first stage's share 1
#: under a Gaussian of 0.7 with noise 1: 41.50 dB with 10, 41.07 with 30; motion 3 px, 38.45 / 38.44.
PILOT_SMOOTHNESS = 10.0
#: The noise's autocorrelation a deconvolution's filter reads, in lags of -q..q pixels: as far as the
#: Wiener filter's windows reach.
CORRELATION_REACH = WINDOW - 1


#: The noise levels a :class:`Gaussian` takes, [0, 1] units: below the least, a solver's weights
#: overflow (1e-30 gave NaN, 1e-10 restored); above the most (a sensor's brightest noise,
#: ``sqrt(a + b)``, is at most 1.42), it is a level in 0..255 units given as one in [0, 1].
SIGMA_RANGE = (1e-9, 2.0)


class Gaussian(DataTerm):
    """``y = A(x) + n``, ``n ~ N(0, sigma^2)``: one level, or one per observed pixel.

    Parameters
    ----------
    sigma : float or tensor
        Standard deviation in [0, 1] units (> 0): a number, or a tensor that broadcasts
        against ``y`` (per pixel, per channel).
    leftover : float
        A variance in [0, 1] units that ``y`` carries beside the noise and that is not the image
        (what a JPEG stage leaves of a file's rounding: :func:`restore.fidelity.jpeg_leftover`), which a blurred
        observation's last filter adds to the noise's (0: none).
    """

    def __init__(self, sigma, *, leftover: float = 0.0):
        if isinstance(sigma, np.ndarray):
            sigma = torch.from_numpy(sigma)
        if torch.is_tensor(sigma):
            if not sigma.is_floating_point() or not bool(((sigma >= SIGMA_RANGE[0]) & (sigma <= SIGMA_RANGE[1])).all()):
                raise ValueError(f"sigma must be floats from {SIGMA_RANGE[0]:g} to {SIGMA_RANGE[1]:g} at every pixel "
                                 "([0, 1] units: 10 levels of 255 are 10 / 255)")
        elif isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
            raise TypeError(f"sigma must be a number or a tensor, got {type(sigma).__name__}")
        elif not SIGMA_RANGE[0] <= sigma <= SIGMA_RANGE[1]:
            raise ValueError(f"sigma must be from {SIGMA_RANGE[0]:g} to {SIGMA_RANGE[1]:g} in [0, 1] units (10 levels of "
                             f"255 are 10 / 255), got {sigma}")
        if not (isinstance(leftover, (int, float)) and leftover >= 0):
            raise ValueError(f"leftover must be a variance, 0 or more, got {leftover!r}")
        self.sigma, self.leftover = sigma, float(leftover)

    def __repr__(self):
        return f"Gaussian(sigma={'per pixel' if torch.is_tensor(self.sigma) else self.sigma})"

    @property
    def per_pixel(self) -> bool:
        return torch.is_tensor(self.sigma) and self.sigma.numel() > 1

    @property
    def white(self) -> bool:
        """One level over each image's pixels and channels (one for the batch, or one per image)."""
        return not self.per_pixel or (self.sigma.dim() == 4 and tuple(self.sigma.shape[1:]) == (1, 1, 1))

    def _sigma(self, like: torch.Tensor):
        # One level stays a Python number: a device tensor would make every x-step wait for the device.
        if not torch.is_tensor(self.sigma):
            return float(self.sigma)
        return self.sigma.to(dtype=like.dtype, device=like.device)

    def value(self, ax, y):
        return (((ax - y) / self._sigma(y)) ** 2).sum() / 2

    def prox(self, z, y, physics, gamma, *, x0=None):
        if not isinstance(physics, LinearPhysics):
            raise TypeError(f"the Gaussian x-step needs a linear forward model, not {type(physics).__name__}")
        if self.per_pixel:
            return physics.prox_l2(z, y, gamma, x0=x0, weight=(1 / self._sigma(y) ** 2).expand_as(y))
        return physics.prox_l2(z, y, gamma / self._sigma(y) ** 2, x0=x0)

    def trusted_scale(self, d, g, y, physics):
        return consistent_scale(d, g, y, physics, self._sigma(y))

    def correct(self, x, y, physics):
        return consistent_means(x, y, physics, self._sigma(y))

    def bounded(self, x, y, physics):
        """Where ``y`` is the image itself plus the noise (``Denoising``), each pixel within
        :data:`NOISE_REACH` levels of the noise of its observation: the image lies there but for one
        pixel in 1.7 million, so the clamp brings a restoration nearer it, never farther but there.
        A pixel the prior and the filter take for noise when it is not (a lone crossing of two thin
        lines of colour, given sigma 10 on a clean image) moved by 200 levels; now by 50 at most."""
        if not isinstance(physics, Denoising):
            return x
        reach = NOISE_REACH * torch.as_tensor(self._sigma(y), dtype=x.dtype, device=x.device)
        return torch.minimum(torch.maximum(x, y - reach), y + reach)

    def wiener(self, pilot, y, physics, *, groups=True, shifted=False, **settings):
        """Where ``y`` is the image blurred plus the noise (``Blur``), the filter of the pilot
        corrected by the data's Wiener deconvolution (:func:`deconvolution`, the pilot's periodogram as
        the image's spectrum), under that correction's noise: BM3D's deblurring (Dabov et al. 2008),
        this filter's pilot in place of its first stage's. On the 12 held-out crops of 128px (never
        the benchmark), against the estimate before it: Gaussian 0.7 with noise 1, 39.09 -> 41.78 dB
        (its first pilot too; each crop now above its blurred input, the worst by 2.4 dB where it was
        2.3 below); Gaussian 2 with noise 2.55, 31.69 -> 31.88; a 15-px motion, 30.00 -> 30.40.

        Where ``y`` is the image itself plus the noise (``Denoising``): the file's pixels
        are clipped to [0, 1], which moves a saturated colour's noisy mean inwards: the filter
        reads ``y`` less that shift, as the pilot would have it (:func:`clipped_mean`).

        Measured on 12 held-out 128x128 crops (never the benchmark), photo prior: 30.78 -> 33.07 dB
        at sigma 25 (32.61 -> 35.63 at 15, 28.30 -> 29.50 at 50, a sensor's noise 31.78 -> 33.90),
        a colour image in two passes (restore.reconstructor); in the filter's first form, every
        window alone, 32.61 at sigma 25. Without the clipping's shift (an earlier form, windows of 8
        every 2 pixels), 29.60 at sigma 25, below the pilot.

        ``settings``: the groups' other keywords of :func:`restore.wiener.empirical_wiener` (``group``,
        ``search``), for a denoised observation's groups.
        """
        chosen = functools.partial(empirical_wiener, shifted=shifted, **settings) if groups else windowed_wiener
        if isinstance(physics, Blur):
            return self._deconvolved(chosen, pilot, y, physics)
        if not isinstance(physics, Denoising):
            return pilot
        return self._filtered(chosen, pilot, y)

    def pilot(self, estimate, y, physics, *, quick=False):
        """Where ``y`` is the image blurred plus noise (``Blur``): the estimate mixed with BM3D's first
        stage of the data's regularised inverse, its share by the blur's width (:data:`DATA_PILOT_WIDTHS`),
        ``quick`` or not: the solver's deconvolution takes most of the time, and under a light blur
        this stage most of the filter's gain (12 held-out crops of 128px, Gaussian 0.7 with noise 1,
        ``quick``: 39.26 dB without it, 41.73 with it, 39.09 with no filter at all; 16.0 s for the 12
        with it against 15.0 with no filter, in one run).

        Where it is the image itself plus noise: the estimate averaged (:data:`PILOT_SHARE`) with
        BM3D's first stage of the observation, its groups matched on the estimate
        (:func:`restore.wiener.hard_thresholded`): where the prior smoothed a texture away, the groups
        still find where it repeats, and the data say what it is; where the prior drew a surface the
        data cannot see, the estimate holds half the vote. Only where the noise's mean level is at most
        :data:`FIRST_STAGE_NOISE` (each image of a batch by its own; else ``estimate``).

        Held-out crops (never the benchmark), the whole denoiser against the estimate alone as the
        pilot, dB (sigma 15 / 25 / 50 / the benchmark's sensor noise): 6 colour crops of 256px +0.08
        / +0.16 / +0.03 / +0.04, 12 of 128px +0.12 / +0.08 / -0.02 / +0.04, 6 of 384px (the first
        stage's references every 4 pixels) +0.08 / +0.18 / - / +0.05; grey observations (one draw of
        the noise in the three channels) at sigma 15 / 25, +0.12 / +0.14 on the 256px crops, +0.13 /
        +0.01 on the 128px ones."""
        if isinstance(physics, Blur):
            share = float(np.clip((DATA_PILOT_WIDTHS[1] - physics.width) / np.ptp(DATA_PILOT_WIDTHS), 0, 1))
            if share == 0:
                return estimate
            thresholded = self._deconvolved(hard_thresholded, estimate, y, physics, smoothness=PILOT_SMOOTHNESS)
            return torch.lerp(estimate, thresholded.clamp(0, 1), share)
        if not isinstance(physics, Denoising) or PILOT_SHARE == 0 or quick:
            return estimate
        taken = self._levels(y) <= FIRST_STAGE_NOISE
        if not taken.any():
            return estimate
        mixed = torch.lerp(estimate, self._filtered(hard_thresholded, estimate, y).clamp(0, 1), PILOT_SHARE)
        return torch.where(taken.view(-1, 1, 1, 1).to(estimate.device), mixed, estimate)

    def _filtered(self, filter, pilot, y):
        """``filter(y, pilot, variance)`` (one of :mod:`restore.wiener`'s) of this noise."""
        sigma, channels = self._sigma(y), y.shape[1]
        variance = sigma**2 if not torch.is_tensor(sigma) or sigma.dim() < 4 else (sigma**2).mean(1, keepdim=True)
        if is_grey(y):
            # A grey photograph a colour prior restores: its three channels are one observation
            # that carries one draw of the noise, which the colour transform would put three times
            # as strong into the luminance than the filter assumes. Filter the one channel it is.
            # (Held-out grey crops, windows of 16 alone: 28.92 -> 29.24 dB at sigma 25; a sensor's
            # noise 28.88 -> 29.29.)
            y, pilot = y[:, :1], to_gray(pilot)
            if torch.is_tensor(sigma) and sigma.dim() == 4:
                sigma = sigma[:, :1]
        expected, _ = clipped_mean(pilot, torch.as_tensor(sigma, dtype=pilot.dtype, device=pilot.device))
        return filter(y - (expected - pilot), pilot, variance).expand(-1, channels, -1, -1).contiguous()

    def _deconvolved(self, filter, pilot, y, physics, *, smoothness=None):
        """``filter(z, pilot, variance, correlation=...)`` (one of :mod:`restore.wiener`'s) of each
        image's :func:`deconvolution` ``z`` of ``y`` around ``pilot``; a grey image's one channel."""
        sigma = torch.as_tensor(self._sigma(y), dtype=torch.float32, device=y.device)
        variance = (sigma**2).broadcast_to(y.shape).mean(1, keepdim=True)
        variance = variance + self.leftover
        channels = y.shape[1]
        if is_grey(y):       # one draw of the noise in three channels (see _filtered)
            y, pilot = y[:, :1], to_gray(pilot)
        out = []
        for i in range(y.shape[0]):
            z, level, correlation = deconvolution(pilot[i:i + 1].float(), y[i:i + 1].float(), physics,
                                                  variance[i:i + 1], smoothness=smoothness)
            out.append(filter(z, pilot[i:i + 1].float(), level, correlation=correlation))
        return torch.cat(out).expand(-1, channels, -1, -1).to(pilot.dtype).contiguous()

    def wiener_passes(self, y, physics):
        """One pass for a blurred observation (``Blur``): on the 12 held-out crops of 128px, one /
        two / three passes gave 41.78 / 41.67 / 41.50 dB under a Gaussian blur of 0.7 with noise 1,
        31.88 / 31.91 / 31.89 under one of 2 with noise 2.55 and 30.40 / 30.48 / 30.44 under a 15-px
        motion with noise 2.55. Otherwise one pass more where the noise is white and at most ``LOW_NOISE``. A colour image's third:
        held-out crops (6 of 256px / 12 of 128px) at sigma 10 / 15 / 20 / 25 / 50 gained +0.27 /
        +0.15 / +0.10 / +0.06 / -0.04 and +0.15 / +0.06 / +0.01 / -0.04 / -0.09 dB by it, and a
        fourth gave +0.11 / +0.04 and +0.05 / -0.01 at 10 / 15. A sensor's noise of 40 photo-electrons at white,
        stabilised to 19.9 (restore.reconstructor), +0.03 / 0.00 from a third pass there; 6 crops of
        384px, +0.16 / +0.12 at 15 / 20. A grey image's second: +0.27 / +0.19 / +0.10 at 10 / 15 / 20
        on the 384px crops, +0.37 / +0.22 / +0.10 on the 256px ones, +0.09 / -0.04 / -0.15 on the
        128px ones (the samples at 10 / 15: the flower +0.98 / +0.53, the lake +0.02 / +0.06, the
        butterfly -0.04 / -0.09). Those were measured before the first pass's pilot took BM3D's first
        stage; with it, the gains shrank and the level fell from 22 to 12 (:data:`LOW_NOISE`)."""
        passes = super().wiener_passes(y, physics)
        if isinstance(physics, Blur):
            return torch.ones_like(passes)
        if not self.white:
            return passes
        return passes + (self._levels(y) <= LOW_NOISE).long()

    def _levels(self, y: torch.Tensor) -> torch.Tensor:
        """Each image's mean noise level over its pixels and channels, ``(N,)`` on the CPU."""
        sigma = torch.as_tensor(self._sigma(y))
        return sigma.reshape(sigma.shape[0] if sigma.dim() == 4 else 1, -1).mean(1).cpu().expand(y.shape[0])

    def precision(self, physics, x):
        inverse = 1 / torch.as_tensor(self._sigma(x), dtype=x.dtype, device=x.device) ** 2
        if inverse.dim() == 4:
            inverse = inverse.mean(1, keepdim=True)
            if inverse.shape[-2:] != (1, 1):     # per observed pixel: carried onto the image's pixels
                inverse = physics.spread(inverse.expand(-1, -1, *physics.A(x[:, :1]).shape[-2:]))
        return physics.gram_diagonal(x) * inverse


def deconvolution(pilot: torch.Tensor, y: torch.Tensor, physics: Blur, variance: torch.Tensor, *,
                  smoothness: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's ``pilot`` ``(1, C, H, W)`` corrected by the Wiener deconvolution of what it leaves
    unexplained, ``y - A(pilot)``: ``z = pilot + G (y - A pilot)`` with the gain
    ``G = conj(K) P / (|K|^2 P + N v)`` at each frequency (``K`` the blur's transfer function, ``v``
    the noise's mean variance, ``N`` the pixels, ``P`` the pilot's periodogram, the channels' mean), or,
    with ``smoothness``, ``G = conj(K) / (|K|^2 + smoothness v |L|^2)``, ``L`` the Laplacian's transfer
    function: a regularised inverse, which owes nothing to the pilot. ``variance`` ``(1, 1, h, w)`` is
    the noise's per observed pixel.

    Where the blur left a frequency, ``z`` holds the data's view of it plus the noise ``G n``; where
    it took it away, the pilot's. That noise is stationary but not white: returned with ``z`` are
    its variance per pixel ``(1, 1, H, W)`` (the observation's carried to the pilot's margin, times
    the mean of ``|G|^2``) and its autocorrelation over lags of :data:`CORRELATION_REACH` pixels, 1 at
    the centre, as :func:`restore.wiener.empirical_wiener` takes them. The residual beyond the
    observation is taken as 0, so the transform's periodic borders meet without a jump."""
    m, (h, w) = physics.margin, pilot.shape[-2:]
    residual = F.pad(y - physics.A(pilot), (m, m, m, m))
    transfer = physics.transfer((h, w), pilot.device, pilot.dtype)
    noise = h * w * variance.mean()
    if smoothness is None:
        power = torch.fft.rfft2(pilot).abs().square().mean(1, keepdim=True)
        gain = transfer.conj() * power / (transfer.abs().square() * power + noise)
    else:
        gain = smooth_inverse(transfer, (h, w), smoothness * variance.mean())
    z = pilot + torch.fft.irfft2(gain * torch.fft.rfft2(residual), s=(h, w))
    # The noise G n is periodic over the support: its lags -q..q read circularly (an image smaller
    # than 2q + 1 repeats them), in float64, where float32 left some coefficients' variances < 0.
    periodic = torch.fft.irfft2(gain.abs().square().reshape(h, -1).double(), s=(h, w))
    lags = torch.arange(-CORRELATION_REACH, CORRELATION_REACH + 1, device=pilot.device)
    autocorrelation = periodic[lags[:, None] % h, lags[None, :] % w]
    # A flat pilot gives a gain of 0 but at the mean, and its noise no level: a floor keeps the
    # filter's shares defined (0 / 0 else), and what the noise does not reach stays the pilot's.
    level = autocorrelation[CORRELATION_REACH, CORRELATION_REACH].clamp_min(1e-12)
    correlation = (autocorrelation / level).float()
    return z, F.pad(variance, (m, m, m, m), mode="replicate") * float(level), correlation
