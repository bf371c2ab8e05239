"""A sensor's noise, shot noise on a floor (:class:`PoissonGaussian`), and the generalised Anscombe
transform that makes it white (:func:`anscombe` and its inverse)."""
from __future__ import annotations

import torch

from ..data import is_grey, to_gray
from ..physics import Blur, Denoising
from .base import DataTerm, Stabilised
from .gaussian import SIGMA_RANGE, Gaussian


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
        if not (0 <= a <= 1 and 0 <= b <= 1 and a + b > 0):
            raise ValueError(f"a and b must be from 0 to 1 ([0, 1] units, as --noise poisson-gaussian:A,B) and not "
                             f"both 0, got {a}, {b}")
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
        return Stabilised(forward=lambda y: anscombe(y, a, b) / top, data=Gaussian(max(1 / top, SIGMA_RANGE[0])),
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
