"""Data terms: how an observation ``y`` was made from ``A(x)``, the one place the solver asks.

The solver (:mod:`restore.solver`) knows the prior and nothing of the damage's statistics. It asks
the data term for

* ``value(ax, y)`` -- the negative log-likelihood of ``y`` given ``A(x) = ax``, up to a constant;
* ``prox(z, y, physics, gamma)`` -- ``argmin_x value(A(x), y) + |x - z|^2 / (2 gamma)``, ``gamma``
  one number or one per pixel (the x-step);
* ``trusted_scale`` and ``correct`` -- the checks of the last x-step that keep a restoration
  consistent with what was observed (see :class:`Gaussian`);
* ``precision(physics, x)`` -- how much the data pin each pixel down (the posterior variance);
* ``wiener(pilot, y, physics)`` -- the data's empirical Wiener filter around the prior's estimate
  (:mod:`restore.wiener`), where the observation is the image itself plus noise, or of its Wiener
  deconvolution where it is blurred; the reconstructor's last step;
* ``stabilised(physics)`` -- where the observation's noise becomes white and of one level under a
  transform (a sensor's noise under the generalised Anscombe transform), for the reconstructor
  to restore it there.

:class:`Gaussian` is white noise of one level or one per observed pixel; :class:`JPEGConstraint`
is a JPEG file's quantisation, a set rather than a noise, whose x-step is a projection. Names
follow DeepInverse's ``optim.data_fidelity``. Tensors are ``(N, C, H, W)`` in [0, 1] units.
"""
from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .data import is_colour, is_grey, to_gray
from .guided import guided_filter
from .jpeg import Planes, Quantisation, from_ycbcr, to_ycbcr
from .physics import Blur, Denoising, LinearPhysics, Physics, smooth_inverse
from .wiener import WINDOW, empirical_wiener, hard_thresholded, windowed_wiener


class DataTerm(ABC):
    """A model of how ``y`` was observed from ``A(x)``."""

    #: Whether ``value`` is finite and differentiable everywhere (the latent-only solver needs it).
    differentiable: bool = True
    #: Whether the noise is white and of one level in every pixel and channel (a colour image's
    #: Wiener filter then takes a second pass: :meth:`wiener_passes`).
    white: bool = False
    #: Whether an encoder told the context may read ``precision`` as the level of the noise
    #: (:func:`restore.solver.encoder_context`).
    noise_like: bool = True

    @abstractmethod
    def value(self, ax: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The negative log-likelihood of ``y`` given ``ax``, summed over the batch."""

    @abstractmethod
    def prox(self, z: torch.Tensor, y: torch.Tensor, physics: Physics, gamma, *,
             x0: torch.Tensor | None = None) -> torch.Tensor:
        """``argmin_x value(A(x), y) + |x - z|^2 / (2 gamma)``, warm-started at ``x0`` where iterative."""

    def trusted_scale(self, d: torch.Tensor, g, y: torch.Tensor, physics: Physics):
        """The decoder's scale ``g`` at its output ``d``, grown where the data say it is wrong."""
        return g

    def correct(self, x: torch.Tensor, y: torch.Tensor, physics: Physics) -> torch.Tensor:
        """``x`` made consistent with ``y`` where the restoration strayed from it."""
        return x

    def bounded(self, x: torch.Tensor, y: torch.Tensor, physics: Physics) -> torch.Tensor:
        """``x`` moved, pixel by pixel, into what the observation allows the image to be; where the
        term bounds nothing, ``x``."""
        return x

    def wiener(self, pilot: torch.Tensor, y: torch.Tensor, physics: Physics, *, groups: bool = True,
               shifted: bool = False) -> torch.Tensor:
        """The data's last word around the restoration ``pilot``: for noise, the observation's
        empirical Wiener estimate (see :mod:`restore.wiener`; without ``groups``, in windows alone,
        a fifth of the work; ``shifted``, its groups' references between those of a pass that was
        not), of its Wiener deconvolution around ``pilot`` where it is blurred;
        for a JPEG, the colours made to follow the luminance and the
        restoration's own filter, within the file's set; where the term has none, ``pilot``."""
        return pilot

    def pilot(self, estimate: torch.Tensor, y: torch.Tensor, physics: Physics, *, quick: bool = False) -> torch.Tensor:
        """The first pass of :meth:`wiener`'s pilot, from the prior's ``estimate``: for white noise,
        the estimate mixed with what the data alone say where it says the image repeats itself (for
        a light blur, the data's regularised inverse); where the term has nothing to add, ``estimate``.
        ``quick``: leave out what costs a large share of the restoration's time (``estimate``)."""
        return estimate

    def wiener_passes(self, y: torch.Tensor, physics: Physics) -> torch.Tensor:
        """How many times :meth:`wiener` runs, each pass around the last one's estimate
        (restore.reconstructor), per image ``(N,)``: two for a colour image whose noise is white
        (the prior's colour differences are a weaker pilot than the first pass's), else one (a term
        may say otherwise: :meth:`JPEGConstraint.wiener_passes`)."""
        colour = is_colour(y)
        return torch.full((y.shape[0],), 2 if self.white and colour else 1)

    def stabilised(self, physics: Physics) -> Stabilised | None:
        """Where the observation's noise becomes white and of one level under a transform
        (:class:`Stabilised`), for a prior to restore it there; None where it is already so or has
        no such transform."""
        return None

    @abstractmethod
    def precision(self, physics: LinearPhysics, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, H, W)``: the inverse variance each pixel of ``x`` is known with from the data alone."""


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


class Gaussian(DataTerm):
    """``y = A(x) + n``, ``n ~ N(0, sigma^2)``: one level, or one per observed pixel.

    Parameters
    ----------
    sigma : float or tensor
        Standard deviation in [0, 1] units (> 0): a number, or a tensor that broadcasts
        against ``y`` (per pixel, per channel).
    leftover : float
        A variance in [0, 1] units that ``y`` carries beside the noise and that is not the image
        (what a JPEG stage leaves of a file's rounding: :func:`jpeg_leftover`), which a blurred
        observation's last filter adds to the noise's (0: none).
    """

    def __init__(self, sigma, *, leftover: float = 0.0):
        if torch.is_tensor(sigma):
            if not bool((sigma > 0).all()) or not bool(torch.isfinite(sigma).all()):
                raise ValueError("sigma must be positive and finite at every pixel")
        elif not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
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


#: The share of a JPEG file's rounding (:meth:`restore.jpeg.Quantisation.rounding_variance`) that a
#: blurred observation's last filter takes as noise after the JPEG stage (``Gaussian(leftover=...)``):
#: the stage leaves errors that are not the image, and a filter that took only the noise before the
#: rounding for noise deconvolved them. On the 12 held-out crops of 128px (never the benchmark), a blur
#: then a JPEG, dB with none / a quarter / all of the rounding, and without the filter: Gaussian 2 with
#: noise 3 at quality 30, 26.58 / 27.42 / 27.43 (27.24); at 90, 30.83 / 30.85 / 30.87 (30.73); Gaussian 0.7
#: with noise 1 at 30, 31.19 / 31.24 / 30.96 (31.13); at 90, 35.83 / 35.87 / 35.75 (35.46).
JPEG_LEFTOVER = 0.25


def jpeg_leftover(quantisation: Quantisation | None) -> float:
    """The ``leftover`` of an observation decoded from a JPEG file of ``quantisation`` and freed of its
    blocks (:data:`JPEG_LEFTOVER`), 0 for any other."""
    return 0.0 if quantisation is None else JPEG_LEFTOVER * quantisation.rounding_variance()


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


class PoissonGaussian(DataTerm):
    """A sensor's noise: ``y = A(x) + n`` with ``Var(n) = a A(x) + b`` per pixel (shot noise on a floor).

    The variance is read from the observation, smoothed over 3x3 pixels so that the noise of
    ``y`` barely moves it (at least 1/255 squared): the term is then :class:`Gaussian` with one
    level per observed pixel.

    Parameters
    ----------
    a, b : float
        Gain and floor variance in [0, 1] pixel units (0 or more, not both 0).
    leftover : float
        As :class:`Gaussian`'s.
    """

    def __init__(self, a: float, b: float, *, leftover: float = 0.0):
        if not (a >= 0 and b >= 0 and a + b > 0):
            raise ValueError(f"a and b must be 0 or more and not both 0, got {a}, {b}")
        self.a, self.b, self.leftover = float(a), float(b), float(leftover)

    def __repr__(self):
        return f"PoissonGaussian(a={self.a:.4g}, b={self.b:.4g})"

    def gaussian(self, y: torch.Tensor) -> Gaussian:
        """The Gaussian term of this observation's per-pixel levels."""
        level = torch.nn.functional.avg_pool2d(y, 3, stride=1, padding=1, count_include_pad=False).clamp(0, 1)
        return Gaussian((self.a * level + self.b).sqrt().clamp_min(1 / 255), leftover=self.leftover)

    def value(self, ax, y):
        return self.gaussian(y).value(ax, y)

    def prox(self, z, y, physics, gamma, *, x0=None):
        return self.gaussian(y).prox(z, y, physics, gamma, x0=x0)

    def trusted_scale(self, d, g, y, physics):
        return self.gaussian(y).trusted_scale(d, g, y, physics)

    def bounded(self, x, y, physics):
        return self.gaussian(y).bounded(x, y, physics)

    def correct(self, x, y, physics):
        return self.gaussian(y).correct(x, y, physics)

    def wiener(self, pilot, y, physics, *, groups=True, shifted=False):
        """The Gaussian term's filter at the pilot's levels where ``y`` observed it (``A(pilot)``), not
        the observation's: the pilot's are nearer the image's (held-out crops, 6 of 256px / 12 of
        128px, the benchmark's sensor noise: +0.03 / +0.02 dB in colour, +0.02 / +0.01 grey, against
        the observation's). A grey observation's levels are its grey's, where a colour prior's pilot
        may tint.

        Where the observation is the image itself, in groups of :data:`SENSOR_GROUP` within
        :data:`SENSOR_SEARCH` pixels."""
        levels = physics.A(to_gray(pilot).expand_as(pilot) if is_grey(y) else pilot)     # where y was observed
        settings = dict(group=SENSOR_GROUP, search=SENSOR_SEARCH) if isinstance(physics, Denoising) else {}
        return self.gaussian(levels).wiener(pilot, y, physics, groups=groups, shifted=shifted, **settings)

    def pilot(self, estimate, y, physics, *, quick=False):
        """For a grey observation, the Gaussian term's (:meth:`Gaussian.pilot`) at the estimate's
        levels, as :meth:`wiener` reads them: held-out grey crops (one draw of the noise for the three
        channels) under the benchmark's sensor noise, 6 of 256px / 12 of 128px, +0.14 / +0.03 dB. A
        colour one is denoised where its noise is white (:meth:`stabilised`), first pilot and all,
        and comes back around an estimate that has had it; a blurred one, not so restored, takes the
        Gaussian term's too."""
        if not is_grey(y) and not isinstance(physics, Blur):
            return estimate
        levels = to_gray(estimate).expand_as(estimate) if is_grey(y) else estimate
        return self.gaussian(physics.A(levels)).pilot(estimate, y, physics, quick=quick)

    def stabilised(self, physics):
        """The generalised Anscombe transform (:func:`anscombe`), where the observation is the image
        itself (``Denoising``) and the noise grows with the signal (``a > 0``), scaled so that white
        stays 1: every channel's noise is then white, of one level, ``1 / anscombe(1)``."""
        if not isinstance(physics, Denoising) or self.a == 0:
            return None
        a, b = self.a, self.b
        top = float(anscombe(torch.tensor(1.0, dtype=torch.float64), a, b))
        return Stabilised(forward=lambda y: anscombe(y, a, b) / top, data=Gaussian(1 / top),
                          inverse=lambda z: anscombe_inverse(z * top, a, b),
                          slope=lambda z: anscombe_inverse_slope(z * top, a, b) * top)

    def precision(self, physics, x):
        # The variance at the image's own values, smoothed as the observation's are: the posterior
        # samples ask at the restored image, the encoder's context at the first guess.
        return self.gaussian(physics.A(x)).precision(physics, x)


#: The groups of a sensor's pass in the image's own terms (:meth:`PoissonGaussian.wiener`: a colour
#: photograph's last, after its passes where the noise was made white; a grey one's only): patches in a
#: group and the search's reach (restore.wiener's ``GROUP`` and ``SEARCH`` elsewhere, 24 within 16).
#: Held-out crops (never the benchmark) under the benchmark's sensor noise, dB against 24 within 16:
#: 6 colour crops of 256px +0.04, 12 of 128px +0.02, the 28 objects +0.01, the 256px crops grey
#: (their own noise in each channel) +0.04, grey observations (one channel) +0.02 / +0.04 on the 256px /
#: 128px crops. It costs a megapixel of colour 14-16 s for that pass against 11 (of about 30 s in all;
#: 2-core CPU, fp32). On the benchmark, measured after: sensor40 32.376 -> 32.375. Every
#: white noise's last pass so instead moved the crops at sigma 15 / 25 / 50 by +0.01 / +0.02 / +0.04
#: (256px) and -0.01 / -0.01 / -0.05 (128px): not taken there.
SENSOR_GROUP = 32
SENSOR_SEARCH = 20


@dataclass(frozen=True)
class Stabilised:
    """An observation carried where its noise is white and of one level: ``forward(y)`` is the
    transformed image plus noise of the term ``data``; ``inverse`` brings a restoration of it
    back, ``slope`` is the inverse's derivative (for the variance: ``slope^2`` times it)."""
    forward: Callable[[torch.Tensor], torch.Tensor]
    data: DataTerm
    inverse: Callable[[torch.Tensor], torch.Tensor]
    slope: Callable[[torch.Tensor], torch.Tensor]


def anscombe(x, a: float, b: float):
    """The generalised Anscombe transform: ``x`` under noise of variance ``a x + b`` (``a > 0``,
    [0, 1] units) -> about unit-variance Gaussian noise (Makitalo & Foi 2013). Arrays or tensors."""
    return 2 * (x / a + 3 / 8 + b / a**2).clip(min=0) ** 0.5


#: The transform's least value (of a pixel at 0 without a floor): below it the closed-form
#: inverse turns back up (at about 0.87) and grows without bound.
ANSCOMBE_FLOOR = 2 * (3 / 8) ** 0.5


def anscombe_inverse(d, a: float, b: float):
    """The closed-form approximation of the exact unbiased inverse of :func:`anscombe` (Makitalo &
    Foi 2011): the ``x`` whose transformed noisy value has mean ``d``, not ``d``'s algebraic inverse
    (which is biased at low counts). Values below :data:`ANSCOMBE_FLOOR` count as that floor (the
    result there is ``-b`` or less: black)."""
    d = d.clip(min=ANSCOMBE_FLOOR)
    return (d**2 / 4 + 1.5**0.5 / (4 * d) - 11 / (8 * d**2) + 5 * 1.5**0.5 / (8 * d**3) - 1 / 8 - b / a**2) * a


def anscombe_inverse_slope(d, a: float, b: float):
    """The derivative of :func:`anscombe_inverse` in ``d`` (0 below the floor, where it is constant)."""
    below = d < ANSCOMBE_FLOOR
    d = d.clip(min=ANSCOMBE_FLOOR)
    slope = (d / 2 - 1.5**0.5 / (4 * d**2) + 11 / (4 * d**3) - 15 * 1.5**0.5 / (8 * d**4)) * a
    return slope * ~below


class JPEGConstraint(DataTerm):
    """``y`` is the decoded JPEG: ``x`` is any image that encodes to the same file.

    The term is 0 inside that set and infinite outside (``value`` gives the squared distance
    of the coefficients to their bins, in quantisation steps, for the record); the x-step lands in
    it (in the YCbCr planes' metric, where the bins are boxes), whatever ``gamma``: each
    coefficient of the estimate goes to its mean within its bin (:meth:`project`), taking the
    estimate's coefficient as the image's plus an error of ``spread`` (0..255 units; 0: the
    projection, the nearest point of the bin). It takes the identity as its forward model.

    Parameters
    ----------
    quantisation : restore.jpeg.Quantisation
        The file's tables and chroma cells.
    spread : float, optional
        The error of a restoration's coefficients (default :data:`ESTIMATE_SPREAD` times the
        file's mean luminance step).
    """

    differentiable = False
    # The rounding is not noise: an encoder that learned the context on noisy views reads a coarse
    # table's bins as heavy noise and smooths the image (measured: the large prior's shared encoder
    # gave 24.0 dB on held-out quality-10 files, 3.5 dB below the decoded files; without the
    # context, 28.0). So encoders are told nothing of a JPEG: the same for the file and in training.
    noise_like = False

    def __init__(self, quantisation: Quantisation, *, spread: float | None = None):
        self.quantisation = quantisation
        self.planes = Planes(quantisation)
        self.spread = ESTIMATE_SPREAD * quantisation.mean_step if spread is None else float(spread)
        if not self.spread >= 0:
            raise ValueError(f"spread must be 0 or more, got {spread}")
        self._bins = self._flat = None

    def __repr__(self):
        return f"JPEGConstraint(quality~{self.quantisation.quality:.0f}, chroma cell {self.quantisation.chroma_cell})"

    def _check(self, physics):
        if not isinstance(physics, Denoising):
            raise TypeError("the JPEG constraint observes the image itself: use Denoising() as the forward model")

    def _padded(self, v: torch.Tensor) -> torch.Tensor:
        """``v`` with its edges repeated up to the encoder's grid, as a JPEG encoder pads a partial block."""
        b = self.quantisation.block
        h, w = v.shape[-2:]
        return torch.nn.functional.pad(v, (0, -w % b, 0, -h % b), mode="replicate") if h % b or w % b else v

    def bins(self, y: torch.Tensor) -> list[torch.Tensor]:
        """The stored coefficients (in steps) of the file ``y`` was decoded from; computed once per
        observation (the solver asks at every step with the same ``y``).

        Where the decoder clipped pixels to [0, 1] (the coefficients make a colour beyond it: a
        saturated one, ringing below black), ``y``'s own coefficients are not the file's; there the
        pixels are first found as the coefficients made them (:func:`unclipped`)."""
        if self._bins is None or self._bins[0] is not y:
            self._bins = (y, [c.round() for c in self.planes.coefficients(unclipped(self._padded(y), self.planes))])
        return self._bins[1]

    def value(self, ax, y):
        total = ax.new_zeros(())
        for c, k in zip(self.planes.coefficients(self._padded(ax)), self.bins(y)):
            total = total + ((c - k).abs() - 0.5).clamp_min(0).pow(2).sum() / 2
        return total

    def prox(self, z, y, physics, gamma, *, x0=None):
        self._check(physics)
        return self.project(z, y, spread=self.spread)

    def project(self, x: torch.Tensor, y: torch.Tensor, *, rounds: int = 3, spread: float = 0.0) -> torch.Tensor:
        """``x`` moved into the set of images that encode to ``y``'s file, and into [0, 1].

        Alternates the projection onto the bins with the clip to [0, 1] (both sets are convex;
        the last step is the bins', so the output is in the set, up to a rounding of at most a
        level where the clip and the bins disagree). Sides off the encoder's grid are padded
        as the encoder pads them (the padding's decoded pixels are not in the file, so there
        the set is only approximated).

        ``spread`` > 0 (0..255 units): the first round moves each coefficient not to the nearest
        point of its bin but to the image's mean there, given ``x``'s coefficient as the image's plus
        Gaussian error of that size (:func:`mean_within`). An estimate just outside a bin then lands
        inside it rather than on its edge, by as much as the bin's width against the error says;
        one deep inside a bin wide against the error barely moves. On held-out crops (never the
        benchmark), the default spread against the projection, dB:

        ============ ===== ===== ===== ===== ===== =====
        quality      10    20    40    60    75    90
        ============ ===== ===== ===== ===== ===== =====
        12 of 128px  +0.04 +0.14 +0.17 +0.10 +0.04 0.00
        6 of 256px   +0.05 +0.10 +0.11             +0.02
        6 of 384px   +0.04 +0.12 +0.10
        ============ ===== ===== ===== ===== ===== =====
        """
        h, w = x.shape[-2:]
        bins = self.bins(y)
        x = self._padded(x)
        for i in range(rounds):
            coefficients = self.planes.coefficients(x)
            if i == 0 and spread > 0:
                targets = [mean_within(c, k - 0.5, k + 0.5, spread / self.planes.steps(t, c))
                           for c, k, t in zip(coefficients, bins, self.quantisation.tables)]
            else:
                targets = [torch.maximum(torch.minimum(c, k + 0.5), k - 0.5) for c, k in zip(coefficients, bins)]
            x = self.planes.move(x, [t - c for t, c in zip(targets, coefficients)])
            if i < rounds - 1:
                x = x.clamp(0, 1)
        return x[..., :h, :w]

    def wiener(self, pilot, y, physics, *, groups=True, shifted=False):
        """Two last steps, each ending in the file's set (the projection):

        * where the tables are coarse (a mean luminance step of :data:`CHROMA_GUIDE_STEP` or more),
          the colour differences (Cb, Cr) follow the restoration's luminance: each filtered guided
          by it (:func:`restore.guided.guided_filter`). The file holds its colour at a quarter of
          the pixels and coarsely; where edges of colour are the luminance's, the filter draws them
          there. Held-out 128x128 crops (never the benchmark), radius 3: +0.10 / +0.05 / +0.10 dB
          at quality 10 / 20 / 40, +0.15 at 10 on the 256x256 ones; 0.00 at 75 and -0.24 at 90,
          where the file's colour is already right;
        * at every quality, the restoration's own empirical Wiener filter in groups (itself as observation
          and pilot: what recurs in its groups is kept, what does not, the decoder's and the
          blocks' leftovers, shrinks) at a level of :data:`SELF_FILTER` times the root of the mean
          luminance step (0..255 units): on the 128x128 / 256x256 crops +0.14 / +0.11, +0.10 /
          +0.06, +0.20 / +0.13, +0.27 / +0.25 and +0.38 / +0.36 dB at quality 10, 20, 40, 75, 90.

        One pass (``shifted``: its groups' references between those of the pass before; see
        :meth:`wiener_passes`). ``groups`` false (``quick``): the second
        step left out (in windows alone, tuned for the groups, it lost 0.1 dB on the flower sample at
        quality 10). Last, the file's flat runs of blocks keep its colour (:meth:`flat_kept`).
        """
        self._check(physics)
        return self.flat_kept(self.self_filtered(self.colours_following_luminance(pilot, y), y, groups=groups,
                                                 shifted=shifted), y)

    def wiener_passes(self, y, physics):
        """Two passes of :meth:`wiener`, the second around the first's estimate, its groups shifted
        (restore.reconstructor): what the first pass left of the blocks, the second's groups, placed
        between the first's, see again. Held-out crops (never the benchmark), two passes against one
        (both of groups alone, :meth:`self_filtered`), dB: 6 of 256px +0.14 / +0.11 at quality 10 /
        40, 12 of 128px +0.06 / +0.10, 6 of 384px (measured after the choice) +0.11 / +0.10. The smooth crops gain most (a flower +0.3 at 10), the textured
        lose up to 0.03 at 10. A third pass: +0.06 / +0.02 more on the 256px crops, +0.01 / 0.00 on
        the 128px ones, for a pass's time more (about 9 s for a megapixel of colour, 2-core CPU).

        Measured with selection by blocks and without the shift first (two passes against one: on
        the 256px crops +0.12 / +0.10 at 10 / 40): the second pass's groups where the first's were
        scored 0.00 to 0.03 below shifted; the second pass at 0.7 of :data:`SELF_FILTER`, or without
        its colours made to follow the luminance again, 0.02 to 0.07 below it. Not kept either (256px
        crops at 10 / 40, 128px at 10, against these two passes): the second pass filtering the
        prior's estimate again around the first's, as BM3D's second stage filters its observation,
        -0.10 / -0.07 / -0.04 (the first's estimate filtered again is what gains); each pass's pilot
        half BM3D's first stage of it (:func:`restore.wiener.hard_thresholded`), +0.04 / +0.03 /
        +0.02 for about 4 s more per megapixel and pass; the colours guided over a radius of 4,
        +0.03 at 10 on the 256px crops, -0.02 on the 128px ones."""
        return torch.full((y.shape[0],), JPEG_PASSES)

    def colours_following_luminance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The first step of :meth:`wiener` (``x`` itself for a grey image or fine tables)."""
        if x.shape[1] != 3 or len(self.quantisation.tables) == 1 or is_grey(y) or self.quantisation.mean_step < CHROMA_GUIDE_STEP:
            return x
        planes = to_ycbcr(x)
        colours = guided_filter(planes[:, :1] / 255, planes[:, 1:] / 255, radius=CHROMA_GUIDE_RADIUS,
                                eps=CHROMA_GUIDE_EPS)
        return self.project(from_ycbcr(torch.cat([planes[:, :1], colours * 255], 1)).clamp(0, 1), y,
                            spread=self.spread).clamp(0, 1)

    def self_filtered(self, x: torch.Tensor, y: torch.Tensor, *, groups: bool = True,
                      shifted: bool = False) -> torch.Tensor:
        """The second step of :meth:`wiener` (``x`` itself without ``groups``)."""
        if not groups:
            return x
        level = SELF_FILTER * self.quantisation.mean_step ** 0.5 / 255
        # Groups alone (select=False): the choice of windows by blocks scores each estimate by
        # Stein's risk under white noise of the level, which x, its own observation, does not carry.
        # Held-out crops, two passes (dB against the choice by blocks): 6 of 256px +0.04 / +0.06 /
        # +0.05 at quality 10 / 20 / 40, the same turned grey +0.00 / +0.05 at 10 / 40, 12 of 128px
        # +0.00 / +0.01 / +0.08 / +0.10 at 10 / 40 / 75 / 90, the 28 objects +0.04 at 10; a pass
        # takes 1.7 s less at 1 MP.
        filtered = empirical_wiener(x, x, level**2, select=False, shifted=shifted)
        return self.project(filtered.clamp(0, 1), y, spread=self.spread).clamp(0, 1)

    def correct(self, x, y, physics):
        """The weighted mean of the restoration and the decoded file: both are in the set, which is
        convex, so the mean is too; their errors are largely their own, so it beats either (see
        :func:`prior_share` for the weights). The file's flat runs of blocks keep its colour
        (:meth:`flat_kept`)."""
        return self.flat_kept(y + prior_share(self.quantisation) * (x - y), y)

    def flat_kept(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x`` with the decoded file's pixels where the file is flat: where every channel of
        ``y`` stays within :data:`FLAT_LEVELS` over the window of :data:`FLAT_RADIUS` around a
        pixel (its block and its neighbours' at 4:2:0), then moved back into the set.

        A run of blocks the file holds as one colour says the image is that colour to within a
        bin, and the bin's middle (the decoded value) is the best guess the file gives; the
        prior's only word there is its own colour. On a colour it does not know it moves the
        whole run: flat saturated magenta, cyan, green, red, orange and blue (256x256) came back
        at 37.10 / 46.51 / 44.69 dB at quality 10 / 20 / 40 against the decoded files' 42.29 /
        47.73 / 46.50 (magenta at quality 10: 35.9 against 43.4, its green raised from 3 to 7
        levels), and at the decoded files' figures with this. Held-out crops (never the
        benchmark), against without: 12 of 128px +0.01 / 0.00 / +0.01 dB, 6 of 256px 0.00 /
        0.00 / 0.00, the same made vivid (saturation x2.5) +0.01 / 0.00 / 0.00. At the edges of
        the image (or of a tile) the window is cut short."""
        # Computed once per observation: every pass of the filter and the last correction ask.
        if self._flat is None or self._flat[0] is not y:
            self._flat = (y, flat_pixels(y))
        flat = self._flat[1]
        if not bool(flat.any()):
            return x
        return self.project(torch.where(flat, y, x), y).clamp(0, 1)

    def precision(self, physics, x):
        # A coefficient known to a bin of width q has variance q^2 / 12; the DCT is orthonormal,
        # so a block's pixels have, on average, the mean of its coefficients' variances.
        inverse = [12 * 255**2 / float((torch.as_tensor(t) ** 2).mean()) for t in self.quantisation.tables]
        return torch.full_like(x[:, :1], sum(inverse) / len(inverse))


#: The error of a JPEG restoration's coefficients (:class:`JPEGConstraint`'s ``spread``, 0..255 units)
#: per unit of the file's mean luminance step: 9.8 at quality 10, 3.6 at 40, 0.6 at 90. Chosen on the
#: held-out crops (dB against the projection, 12 of 128px at quality 10 / 40 / 90): 0.035 +0.04 /
#: +0.12 / 0.00, 0.05 +0.04 / +0.17 / 0.00; a spread of 0.4 / 0.5 / 0.6 / 0.8 times the step's root
#: instead gave +0.03 / +0.04 / +0.05 / +0.03 at 10 and +0.16 / +0.16 / +0.12 / -0.05 at 40, 0.5
#: -0.08 at 90 (the 256px crops, 0.5: -0.02 at 90; the step's share here: +0.02). One spread in steps
#: for every coefficient (0.1 of a step: +0.03 / +0.09 at 10 / 40; 0.2: -0.28 at 10) pulls the fine
#: coefficients of a wide bin towards its middle; one in pixel units lets them be.
ESTIMATE_SPREAD = 0.05
#: The mean luminance step (Pillow's quality 50: 58; 60: 46; 75: 29) from which a JPEG's colours are
#: made to follow the luminance (:meth:`JPEGConstraint.wiener`), and the guided filter's radius and
#: regularisation ([0, 1] units squared), chosen on the held-out crops (dB against none): at quality
#: 10 on the 128px ones radius 2 / 3 / 4 / 8 +0.07 / +0.10 / +0.10 / +0.01, on the 256px ones 3 / 4 /
#: 6 +0.15 / +0.19 / +0.23; at 20 (128px) 3 / 4 / 6 +0.05 / +0.02 / -0.07, at 40 +0.10 / +0.03 /
#: -0.12. eps 1e-5 to 1e-3 scored within 0.01 dB of each other.
CHROMA_GUIDE_STEP = 50.0
CHROMA_GUIDE_RADIUS = 3
CHROMA_GUIDE_EPS = 1e-4
#: The level of a JPEG restoration's own Wiener filter (:meth:`JPEGConstraint.wiener`), per root of
#: the file's mean luminance step: chosen on the held-out crops from 0.7 / 1.0 / 1.3 (on the
#: 128x128 ones, +0.11 / +0.14 / +0.15 dB at quality 10 and +0.31 / +0.38 / +0.42 at 90; on the
#: 256x256 ones 1.0 / 1.3 / 1.6 gave +0.06 / +0.04 / +0.01 at 20), a level of 14 at quality 10, 3.4 at 90.
#: With two passes of groups alone (:meth:`JPEGConstraint.wiener_passes`), 0.8 / 1.2 scored -0.03 to
#: -0.01 / -0.00 to +0.02 against 1.0 on the 256px and 128px crops at quality 10 and 40.
SELF_FILTER = 1.0
#: How many times a JPEG restoration takes :meth:`JPEGConstraint.wiener` (see its ``wiener_passes``).
JPEG_PASSES = 2


#: Rounds of :func:`unclipped`'s alternation.
UNCLIP_ROUNDS = 20


def unclipped(y: torch.Tensor, planes: Planes, *, rounds: int = UNCLIP_ROUNDS) -> torch.Tensor:
    """The decoded JPEG ``y`` as its coefficients made it, before the decoder's clip to [0, 1].

    The decoder rounds to whole levels, then clips: a pixel it left inside (0, 1) is the
    coefficients' image to within half a level; one at 0 or 1 is taken to be at or beyond that
    bound (the rounding allows half a level inside it too; held that tight, held-out crops scored
    0.00 to +0.06 dB better at quality 10 / 40 / 90, made vivid or not). Alternately moving the
    image's coefficients to the nearest whole steps (the file holds whole steps) and its pixels
    into what the decoded pixels so allow finds an image that both are true of. Without a clipped
    pixel ``y`` itself is returned (a pixel at 0 or 1 anywhere, common in photographs, costs 20
    rounds of the planes' transform, once for each observation: nothing measurable against a
    restoration).
    """
    clipped_low, clipped_high = y <= 0, y >= 1
    if not bool((clipped_low | clipped_high).any()):
        return y
    half = 0.5 / 255
    low = torch.where(clipped_low, -torch.inf, torch.where(clipped_high, 1.0, y - half))
    high = torch.where(clipped_high, torch.inf, torch.where(clipped_low, 0.0, y + half))
    z = y
    for _ in range(rounds):
        coefficients = planes.coefficients(z)
        z = planes.move(z, [c.round() - c for c in coefficients])
        z = torch.maximum(torch.minimum(z, high), low)
    return z


def prior_share(quantisation: Quantisation) -> float:
    """The restoration's weight against the decoded file's in :meth:`JPEGConstraint.correct`: 1
    for coarse tables (the decoded blocks are far from the image), falling for fine ones (the
    file keeps detail the prior cannot draw).

    Piecewise linear in the mean step of the luminance table through :data:`SHARE_POINTS`
    (Pillow's quality 10 has a mean step of 196, 20: 141, 40: 72, 75: 29, 90: 11.5). Chosen on 12
    held-out crops of 128x128 (not the benchmark), best weight by quality: 10: 1 (28.47 dB; 1/2:
    28.03, the decoded file 26.90), 20: 3/4 (30.84; 1: 30.69), 30: 3/4 (32.00; 1/2: 31.94),
    40 to 75: 1/2 (40: 33.04 against 32.47 with 1 and 31.96 decoded; 75: 36.04, 34.82, 35.24), 90:
    1/4 to 1/2 (39.15; 38.76 decoded); and on a crop of samples/lake.png with a saturated magenta
    square, where at quality 90 and 95 only 1/10 still gains (29.57 against 29.54 decoded; 1/2:
    29.24). Without it the restoration was worse than the decoded file from quality 60 on.
    """
    steps, shares = zip(*SHARE_POINTS)
    return float(np.interp(quantisation.mean_step, steps, shares))


#: (mean luminance quantisation step, the restoration's weight) through which :func:`prior_share` runs.
SHARE_POINTS = ((6.0, 0.1), (30.0, 0.4), (70.0, 0.5), (190.0, 1.0))
#: Where a JPEG's decoded pixels keep within FLAT_LEVELS (0..255 units, the decoder's rounding) over
#: the window of FLAT_RADIUS pixels around a pixel, the file's value stands
#: (:meth:`JPEGConstraint.flat_kept`).
FLAT_RADIUS = 8
FLAT_LEVELS = 1.5


def flat_pixels(y: torch.Tensor) -> torch.Tensor:
    """Where ``y`` is one colour: ``(N, 1, H, W)``, True where every channel stays within
    :data:`FLAT_LEVELS` (0..255 units) over the window of :data:`FLAT_RADIUS` around the pixel
    (cut short at the edges of the image)."""
    high, low, _ = window_extremes(y)
    return (high - low <= FLAT_LEVELS / 255).all(1, keepdim=True)


def window_extremes(y: torch.Tensor, observed: torch.Tensor | None = None, *, radius: int = FLAT_RADIUS):
    """Each channel's highest and lowest value over the window of ``radius`` around every pixel,
    and the share of the window that was seen: with ``observed`` (``(N or 1, 1, H, W)``, 1 where
    a pixel was seen) only the seen pixels count (a window without one has ``high`` below
    ``low``). Windows are cut short at the edges of the image."""
    k = 2 * radius + 1
    if observed is None:
        return _window_max(y, radius), -_window_max(-y, radius), torch.ones_like(y[:, :1])
    seen = (observed >= 0.5).expand(len(y), -1, -1, -1)
    high = _window_max(torch.where(seen, y, -torch.inf), radius)
    low = -_window_max(torch.where(seen, -y, -torch.inf), radius)
    return high, low, F.avg_pool2d(seen.to(y.dtype), k, 1, radius, count_include_pad=False)


def _window_max(t: torch.Tensor, radius: int) -> torch.Tensor:
    """The highest value over the square window of ``radius`` around each pixel (cut short at the
    edges): along the rows, then the columns, which is the square's (a 17 x 17 window at 1 MP in
    colour: 1.0 -> 0.3 s)."""
    k = 2 * radius + 1
    return F.max_pool2d(F.max_pool2d(t, (1, k), 1, (0, radius)), (k, 1), 1, (radius, 0))


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
