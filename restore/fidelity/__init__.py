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

The terms live in submodules, one model of the damage each: :mod:`.base` (the interface),
:mod:`.gaussian`, :mod:`.sensor`, :mod:`.quantisation` (a JPEG's), and :mod:`.consistency` (the
checks that keep a Gaussian restoration consistent with what was observed, and the truncated
Gaussian means they and the JPEG's projection take).
"""
from .base import DataTerm, Stabilised
from .consistency import clipped_mean, consistent_means, consistent_scale, mean_within
from .gaussian import FIRST_STAGE_NOISE, Gaussian, deconvolution
from .quantisation import (FLAT_LEVELS, FLAT_RADIUS, JPEG_LEFTOVER, JPEGConstraint, jpeg_leftover, prior_share,
                           unclipped, window_extremes)
from .sensor import (SENSOR_GROUP, SENSOR_SEARCH, PoissonGaussian, anscombe, anscombe_inverse,
                     anscombe_inverse_slope)

__all__ = ["DataTerm", "Stabilised", "Gaussian", "PoissonGaussian", "JPEGConstraint", "deconvolution",
           "anscombe", "anscombe_inverse", "anscombe_inverse_slope", "jpeg_leftover", "prior_share", "unclipped",
           "window_extremes", "consistent_scale", "consistent_means", "mean_within", "clipped_mean",
           "FIRST_STAGE_NOISE", "FLAT_LEVELS", "FLAT_RADIUS", "JPEG_LEFTOVER", "SENSOR_GROUP", "SENSOR_SEARCH"]
