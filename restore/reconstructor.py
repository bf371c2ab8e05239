"""The restoration of one batch of tensors, as a module: ``Reconstructor(prior)(y, physics)``.

:func:`restore.restore` cuts images into tiles and calls a :class:`Reconstructor` on each batch
of them (where the observation is the image itself, its :meth:`~Reconstructor.estimate` on the
prior's tiles and its :meth:`~Reconstructor.finish` on the blended whole); a caller with tensors
(an experiment, a training loop, DeepInverse) calls it directly, without tiling, and gets the
latent code and the variance beside the image.

>>> from restore.reconstructor import Reconstructor
>>> from restore.physics import Downsampling
>>> from restore.fidelity import Gaussian
>>> result = Reconstructor("photo", steps=20)(y, Downsampling((256, 256), 4), data=Gaussian(1 / 255))  # doctest: +SKIP
>>> result.x, result.z                                                                                 # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import replace
from numbers import Integral, Real
from typing import Callable

import numpy as np
import torch
from torch import nn

from .data import is_colour
from .fidelity import DataTerm, Gaussian, PoissonGaussian
from .model import _VAE
from .physics import Blur, Physics
from .solver import ANCHORS, SAMPLERS, SolverResult, csgm, joint_map

MODES = {"joint": joint_map, "latent": csgm}

#: The symmetries of the square, as (transpose, flipped axes), in the order an ensemble takes them:
#: the identity, the transpose, the two flips, then the rest of the group.
SYMMETRIES = ((False, ()), (True, ()), (False, (-1,)), (False, (-2,)),
              (False, (-2, -1)), (True, (-1,)), (True, (-2,)), (True, (-2, -1)))
ENSEMBLES = (1, 2, 4, 8)


def check_ensemble(ensemble) -> None:
    """A ``ValueError`` unless ``ensemble`` is one of :data:`ENSEMBLES`."""
    if isinstance(ensemble, bool) or not isinstance(ensemble, Integral) or ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {', '.join(map(str, ENSEMBLES))}, got {ensemble!r}")


class Turned:
    """A prior that looks at images turned by one of :data:`SYMMETRIES`: it encodes the image
    turned and decodes back into the image's own orientation. The solver, the forward model and
    the data term (a JPEG file's block grid included) work on the image as it is and never know.
    Every other attribute is the prior's own."""

    def __init__(self, vae, transpose: bool, flips: tuple[int, ...]):
        self.vae, self.transpose, self.flips = vae, transpose, flips

    def __getattr__(self, name):
        return getattr(self.vae, name)

    def _turn(self, x):
        x = x.transpose(-1, -2) if self.transpose else x
        return x.flip(self.flips).contiguous(memory_format=torch.channels_last)

    def _back(self, x):
        x = x.flip(self.flips)
        return x.transpose(-1, -2) if self.transpose else x

    def encode(self, x, context=None):
        return self.vae.encode(self._turn(x), None if context is None else self._turn(context))

    def decode(self, z):
        return self._back(self.vae.decode(z))

    def decode_with_scale(self, z):
        d, g = self.vae.decode_with_scale(z)
        return self._back(d), self._back(g) if torch.is_tensor(g) and g.dim() == 4 else g


def _check_fits(x: torch.Tensor, prior) -> None:
    """Refuse images the prior cannot take whole: other channels, or sides off its grid."""
    channels, multiple = prior.channels, prior.size_multiple
    if x.shape[1] != channels:
        fix = "x.expand(-1, 3, -1, -1)" if channels == 3 and x.shape[1] == 1 else "convert them first"
        raise ValueError(f"this prior takes images of {channels} channel(s), got {x.shape[1]}; {fix}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"the Reconstructor takes images whose sides are multiples of {multiple}, got {h}x{w}; "
                         "pad them (torch.nn.functional.pad, mode='reflect'), or use restore.restore, which tiles")


def _shown(value) -> str:
    """``value`` as an error message names it: its repr where short (None, 0.1, '3'), else its type's
    name (a module's repr runs to pages)."""
    text = repr(value)
    return text if len(text) <= 40 else type(value).__name__


#: The largest solver step size: the code and image move by about ``lr`` per step, and far larger
#: steps leave any image behind (1e30 gave NaN).
MAX_LR = 1.0


def check_search(*, mode: str, lr, gamma, prior_weight, anchor, sampler: str, quick) -> None:
    """A ``ValueError`` naming the first of the solver's settings it cannot take (``gamma``,
    ``prior_weight`` and ``anchor`` may be None: the prior's or the task's), with what it takes;
    :class:`Reconstructor` and :class:`restore.pipeline.SolverSettings` ask it alike."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'joint' or 'latent', got {_shown(mode)}")
    for name, value, allowed in (("anchor", anchor, ANCHORS + (None,)), ("sampler", sampler, SAMPLERS)):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed[:2]))}, got {_shown(value)}")
    # 0 is a step size too: the code stays where the encoder put it (the tests hold it there so).
    for name, value, least, most, note in (("lr", lr, 0.0, MAX_LR, "default 0.05"),
                                           ("gamma", gamma, None, 1.0, "the decoder's scale; None: the prior's"),
                                           ("prior_weight", prior_weight, 0.0, math.inf, "default 1")):
        if value is None and name != "lr":
            continue
        number = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
        if not (number and (value > 0 if least is None else value >= least) and value <= most):
            lower = "above 0" if least is None else "0 or more"
            upper = "" if most == math.inf else f" and at most {most:g}"
            raise ValueError(f"{name} must be a number {lower}{upper} ({note}), got {_shown(value)}")
    if not isinstance(quick, (bool, np.bool_)):
        raise ValueError(f"quick must be True or False, got {_shown(quick)}")


def _check_whole(name: str, value, least: int, note: str = "") -> None:
    """A ``ValueError`` unless ``value`` is a whole number of ``least`` or more (True and 2.0 are not)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < least:
        raise ValueError(f"{name} must be a whole number, {least} or more{note}, got {_shown(value)}")


def _inner_vae(prior):
    """The VAE under ``prior``: itself, or the one a wrapper passes everything else on to (its ``vae``:
    :class:`Turned`, :class:`restore.devices.Autocast`); None for anything else."""
    for _ in range(16):             # wrappers of wrappers, never a loop
        if isinstance(prior, _VAE):
            return prior
        prior = getattr(prior, "vae", None)
        if prior is None:
            return None
    return None


def _check_prior(prior) -> None:
    """A ``TypeError`` unless ``prior`` is restore's VAE or wraps one: anything else failed only at the
    first call, deep in the solver."""
    if _inner_vae(prior) is None:
        raise TypeError(f"prior must be 'photo', 'photo-large', 'digits', a checkpoint path or a model from "
                        f"restore.load_prior, got {_shown(prior)}")


def _observation(y, prior, name: str = "y") -> torch.Tensor:
    """``y`` checked to be a finite floating-point batch the prior can take, before any work: detached
    (the solver follows no gradient back to it) and in the prior's dtype (a float64 ``y`` is restored
    in the prior's float32 rather than refused)."""
    if not torch.is_tensor(y) or y.dim() != 4:
        raise ValueError(f"the Reconstructor takes a batch of images (N, C, H, W), got "
                         f"{tuple(y.shape) if torch.is_tensor(y) else type(y).__name__}; x[None] makes one "
                         "image a batch (restore.restore takes images of any layout)")
    if not y.is_floating_point():
        raise ValueError(f"{name} must hold floats in [0, 1], got {y.dtype}; pass {name}.float() / 255 "
                         "for 8-bit values")
    if not y.numel():
        raise ValueError(f"{name} holds no pixels (shape {tuple(y.shape)}); give at least one image")
    y = y.detach()
    weights = next(_inner_vae(prior).parameters(), None)
    if weights is not None:
        if y.device != weights.device:
            raise ValueError(f"{name} is on {y.device} and the prior on {weights.device}; "
                             f"move {name} there ({name}.to('{weights.device}'))")
        y = y.to(weights.dtype)
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"{name} has NaN or infinite values; replace them first (torch.nan_to_num)")
    return y


def _first_image(y: torch.Tensor, physics: Physics, x0, prior) -> torch.Tensor:
    """``x0`` checked to have the image's shape, ``A^T y``'s (its default); a ``ValueError`` where
    ``physics`` does not fit ``y`` (a mask or a downsampling made for another size), before any work."""
    try:
        image = physics.A_adjoint(y)
    except RuntimeError as e:           # torch's broadcasting and matrix products, in its words
        if "size" not in str(e) and "shape" not in str(e):
            raise                       # another matter (a device, the memory): as torch says it
        raise ValueError(f"the forward model {type(physics).__name__} does not fit y of shape {tuple(y.shape)} "
                         f"({str(e).splitlines()[0]}); make it for y's size") from None
    multiple = prior.size_multiple
    if isinstance(physics, Blur) and any(n % multiple for n in image.shape[-2:]) \
            and not any(n % multiple for n in y.shape[-2:]):
        # y fits the prior's grid and the blur's margin takes x off it: say which margin puts it back.
        margin = next(m for m in range(physics.margin, physics.margin + multiple)
                      if not (2 * m) % multiple)
        raise ValueError(f"Blur's margin of {physics.margin} pixels makes the image {image.shape[-2]}x"
                         f"{image.shape[-1]}, off the prior's grid of {multiple}; give Blur(kernel, margin={margin})")
    if x0 is None:
        return image
    x0 = _observation(x0, prior, "x0")
    if x0.shape != image.shape:
        raise ValueError(f"x0 must have the image's shape {tuple(image.shape)} (A^T y's), got {tuple(x0.shape)}")
    return x0


#: How far beyond [0, 1] an observation may reach (:func:`_check_range`): this much, and this many
#: levels of its noise, counted up to the most a level can be in [0, 1] units (a level given in 8-bit
#: units, beside a ``y`` in them, must not let 0..255 through).
REACH, NOISE_REACH, MOST_NOISE = 0.5, 6, 0.25


def _check_range(y: torch.Tensor, data: DataTerm, name: str = "y") -> None:
    """A ``ValueError`` for an observation further outside [0, 1] than its noise explains: 8-bit values
    given as floats (``y * 255``) were clamped to white in silence."""
    level = 0.0
    if isinstance(data, Gaussian):
        level = float(torch.as_tensor(data.sigma).max())
        if torch.is_tensor(data.sigma):
            try:
                torch.broadcast_shapes(data.sigma.shape, y.shape)
            except RuntimeError:
                raise ValueError(f"the data term's sigma of shape {tuple(data.sigma.shape)} does not broadcast "
                                 f"against {name} of shape {tuple(y.shape)}; give one level per pixel of {name}") from None
    elif isinstance(data, PoissonGaussian):
        level = math.sqrt(data.a + data.b)           # the noise at white, its largest
    if not y.numel():
        return
    reach = REACH + NOISE_REACH * min(level, MOST_NOISE)
    low, high = (float(v) for v in torch.aminmax(y))
    if low < -reach or high > 1 + reach:
        raise ValueError(f"{name} must hold values in [0, 1] (plus its noise), got {low:.4g} to {high:.4g}; "
                         "divide 8-bit values by 255")


def _terms(physics, data):
    """restore's physics and data term for ``physics`` (restore's or DeepInverse's) and ``data``."""
    if data is not None and not isinstance(data, DataTerm):
        example = data if isinstance(data, Real) and not isinstance(data, bool) else "sigma"
        raise TypeError(f"data must be a data term such as restore.fidelity.Gaussian({example}), "
                        f"got {_shown(data)}")
    if not isinstance(physics, Physics):
        from .interop import from_deepinv
        physics, noise = from_deepinv(physics)
        data = data if data is not None else noise
    return physics, data if data is not None else Gaussian(1 / 255)


class Reconstructor(nn.Module):
    """restore's solver as a module: ``forward(y, physics) -> SolverResult`` (``x``, ``z``, ``variance``).

    Parameters
    ----------
    prior : str or VAE
        ``"photo"``, ``"photo-large"``, ``"digits"``, a checkpoint path, or a loaded VAE (used as it is: its device
        and arithmetic are the caller's).
    steps : int
        Solver steps (0: the encoder's estimate, refined by the last x-step only).
    mode : {"joint", "latent"}
        Joint MAP over image and code (JPMAP), or over the code alone (CSGM).
    lr, prior_weight, anchor, samples, sampler, gamma
        As :func:`restore.solver.joint_map`.
    ensemble : int
        1, 2, 4 or 8: the mean of the restorations by the prior looking at the image turned and
        flipped that many ways (:class:`Turned`). A photograph mirrored or transposed is as
        plausible as itself: the prior trained on mirrored crops, and on held-out crops each view
        restores within 0.16 dB of the others (the transposed ones, never trained on, a little
        below), while their errors differ, so the mean is better, for that many times the work.
        A prior of images that are not alike turned (``symmetric`` false: the digits) refuses it.
    quick : bool
        The data's last filter (below) in windows alone, once in each domain (a sensor's colour
        image: once where its noise is white, once in its own terms): denoising a 1 MP photograph
        took 4.2 s against 23 (2-core CPU), for 0.5-1.3 dB less on held-out crops. A JPEG's own
        filter is left out; a light blur's first stage of the pilot is kept
        (:meth:`~restore.fidelity.Gaussian.pilot`).

    The estimate ends with the data term's last filter around it
    (:meth:`~restore.fidelity.DataTerm.wiener`: where the observation is the image itself plus
    noise, its empirical Wiener filter; where it is blurred, that filter of its Wiener deconvolution
    around the estimate; for a JPEG, the colours following the luminance and the
    restoration's own filter) for a prior whose ``data_filter`` says so (the photo priors, not the
    digits).
    Colour images whose noise a transform makes white and of one level
    (:meth:`~restore.fidelity.DataTerm.stabilised`: a sensor's) are restored there by a prior
    whose ``stabilise`` says so, brought back and filtered once more in their own terms; the
    result's ``z`` and ``objective`` are then those of the transformed image. A batch counts as
    grey (three copies of one channel) only when all of its images are.
    """

    def __init__(self, prior="photo", *, steps: int = 30, mode: str = "joint", lr: float = 0.05,
                 prior_weight: float = 1.0, anchor: str = "prior", samples: int = 1, sampler: str = "encoder",
                 gamma: float | None = None, ensemble: int = 1, quick: bool = False):
        super().__init__()
        check_search(mode=mode, lr=lr, gamma=gamma, prior_weight=prior_weight, anchor=anchor, sampler=sampler,
                     quick=quick)
        for name, value in (("anchor", anchor), ("prior_weight", prior_weight)):    # no task here to default them
            if value is None:
                raise ValueError(f"{name} must be given to the Reconstructor (None takes a task's default only in "
                                 "SolverSettings)")
        _check_whole("steps", steps, 0, " (0: the encoder's estimate)")
        _check_whole("samples", samples, 1)
        if samples > 1 and mode != "joint":
            raise ValueError("posterior samples need the joint mode")
        check_ensemble(ensemble)
        if isinstance(prior, (str, bytes)) or hasattr(prior, "__fspath__"):
            from .priors import shared_prior
            prior = shared_prior(str(prior))
        _check_prior(prior)
        if ensemble > 1 and not getattr(prior, "symmetric", False):
            raise ValueError(f"ensemble {ensemble} turns the image, and this prior's images are not alike turned "
                             "(a turned digit is no digit); leave the ensemble out")
        self.prior, self.ensemble, self.quick = prior, ensemble, quick
        self.steps, self.mode, self.lr, self.prior_weight, self.anchor = steps, mode, lr, prior_weight, anchor
        self.samples, self.sampler, self.gamma = samples, sampler, gamma

    def forward(self, y: torch.Tensor, physics: Physics, *, data: DataTerm | None = None,
                x0: torch.Tensor | None = None,
                refine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                callback: Callable[[int], None] | None = None, generator=None) -> SolverResult:
        """Restore ``y`` (N, C, h, w) observed through ``physics``: :meth:`finish` of :meth:`estimate`.

        ``physics`` is one of restore's (:mod:`restore.physics`) or DeepInverse's (a linear one
        with a Gaussian noise model: its ``sigma`` becomes the data term). ``data`` defaults to
        that noise, or to Gaussian noise of 1/255 for physics without one; ``x0`` to
        ``A^T y``. The result's ``x`` is ``(N, C, H, W)`` in [0, 1].

        ``y`` holds finite floats in [0, 1] (plus its noise); it is restored in the prior's dtype (a
        float64 ``y`` in float32) and no gradient is followed back to it. Anything else is refused
        before any work, by a ``ValueError`` (a ``TypeError`` for ``data``) that says what to pass.
        """
        y, physics, data = self._checked(y, physics, data)
        x0 = _first_image(y, physics, x0, self.prior)
        result = self._estimate(y, physics, data=data, x0=x0, refine=refine, callback=callback, generator=generator)
        return self._finish(result, y, physics, data=data)

    def _checked(self, y, physics, data):
        """``y`` checked (:func:`_observation`, :func:`_check_range`) and restore's physics and data
        term for ``physics`` and ``data`` (:func:`_terms`), once per public call."""
        y = _observation(y, self.prior)
        physics, data = _terms(physics, data)
        _check_range(y, data)
        return y, physics, data

    def estimate(self, y: torch.Tensor, physics: Physics, *, data: DataTerm | None = None,
                 x0: torch.Tensor | None = None,
                 refine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 callback: Callable[[int], None] | None = None, generator=None,
                 colour: bool | None = None) -> SolverResult:
        """The prior's part of :meth:`forward` (arguments as there): the solver's estimate, the mean
        of the turns' for an ensemble, before the data's last filter. Where the noise is restored
        stabilised (:meth:`~restore.fidelity.DataTerm.stabilised`), ``x`` is the transformed image's
        estimate, which :meth:`finish` takes as it is. ``colour``: whether the image is a colour one
        (not three copies of one channel), which decides that; default ``y``'s. Parts of one image
        restored apart must be given the whole image's, in both calls."""
        y, physics, data = self._checked(y, physics, data)
        x0 = _first_image(y, physics, x0, self.prior)
        return self._estimate(y, physics, data=data, x0=x0, refine=refine, callback=callback, generator=generator,
                              colour=colour)

    def _estimate(self, y, physics, *, data, x0, refine, callback, generator, colour=None) -> SolverResult:
        """:meth:`estimate` of a checked ``y``, or of its transform (which may leave [0, 1])."""
        _check_fits(x0, self.prior)
        stable = self._stabilised(y, physics, data, colour)
        if stable is not None:
            return self._estimate(stable.forward(y), physics, data=stable.data, x0=stable.forward(x0),
                                  refine=refine, callback=callback, generator=generator)
        results = [self._solve(Turned(self.prior, *turn) if turn != SYMMETRIES[0] else self.prior, y, physics,
                               data=data, x0=x0, refine=refine, callback=callback, generator=generator)
                   for turn in SYMMETRIES[:self.ensemble]]
        if len(results) == 1:
            return results[0]
        xs = torch.stack([r.x for r in results])
        variance = None
        if results[0].variance is not None:    # of the mixture: the mean variance plus the means' spread
            variance = (torch.stack([r.variance for r in results]).mean(0)
                        + xs.var(0, unbiased=False).mean(1, keepdim=True))
        return SolverResult(x=xs.mean(0), z=results[0].z, objective=results[0].objective, variance=variance)

    def finish(self, result: SolverResult, y: torch.Tensor, physics: Physics, *,
               data: DataTerm | None = None, colour: bool | None = None) -> SolverResult:
        """The data's last filter around :meth:`estimate`'s ``result`` of ``y`` (see :meth:`_filtered`).
        It needs no more than the estimate and the observation, so :func:`restore.restore` runs it on
        the whole image (in tiles of :data:`restore.pipeline.FILTER_TILE`) once the prior's tiles are
        blended: the groups of similar patches then reach across the prior's tile borders.

        Where the noise was restored stabilised, the filter runs there, the result is brought back
        (its variance by the inverse's slope), and the filter runs once more in the image's own
        terms (each pixel's own level): without the first, the butterfly crop of the tests lost
        0.65 dB. A colour pixel's channels have levels of their own, which the term in the image's
        terms can only average; a grey one has one, and there the transform only bends the image
        (held-out grey crops: -0.04 dB), so grey images are not transformed (``colour`` as
        :meth:`estimate` takes it)."""
        y, physics, data = self._checked(y, physics, data)
        return self._finish(result, y, physics, data=data, colour=colour)

    def _finish(self, result, y, physics, *, data, colour=None) -> SolverResult:
        """:meth:`finish` of a checked ``y``, or of its transform (which may leave [0, 1])."""
        stable = self._stabilised(y, physics, data, colour)
        if stable is None:
            result = self._filtered(result, y, physics, data, passes=data.wiener_passes(y, physics))
        else:
            inner = self._finish(result, stable.forward(y), physics, data=stable.data)
            variance = inner.variance
            if variance is not None:
                variance = variance * stable.slope(inner.x).square().mean(1, keepdim=True)
            result = replace(inner, x=stable.inverse(inner.x).clamp(0, 1), variance=variance)
            result = self._filtered(result, y, physics, data, passes=1)
        return replace(result, x=data.bounded(result.x, y, physics))

    def _stabilised(self, y, physics, data, colour=None):
        """The transform under which this observation is restored (a colour one whose noise it makes
        white, for a prior that takes it), or None."""
        colour = is_colour(y) if colour is None else colour
        return data.stabilised(physics) if colour and getattr(self.prior, "stabilise", False) else None

    def _filtered(self, result: SolverResult, y, physics, data, *, passes: int | torch.Tensor) -> SolverResult:
        """Last, the data themselves around the prior's estimate (the data term's Wiener filter),
        for a prior that takes it: on the turns' mean (per turn instead, 8 turns scored 32.54 /
        33.48 dB on 12 held-out crops, sigma 25 / a sensor's noise, against 32.55 / 33.49, in twice
        the time), ``passes`` times (or per image, ``(N,)``), each around the last one's estimate.

        A colour image takes two passes where its noise is white, a grey one one (each one more where the
        noise is light: :meth:`restore.fidelity.DataTerm.wiener_passes`): the prior's colour differences are
        a weaker pilot than the first pass's (held-out crops, 6 of 256px / 12 of 128px, sigma 15, 25, 50:
        +0.51 / +0.47, +0.36 / +0.25, +0.05 / -0.01 dB; the colour differences' second pass alone, +0.37 /
        +0.35 at 15; a sensor's noise, where white: +0.10 / +0.06). A grey one took one at every level: the
        second moved it either way (on one cut of the 256px crops +0.14 / +0.01 / -0.11 dB at sigma 15 / 25
        / 50, on another +0.27 / +0.17 / +0.06, on the 128px ones -0.07 to +0.07, on the samples' butterfly,
        lake and flower -0.11 to +0.40; a sensor's noise: +0.13 / +0.08 on held-out crops, -0.08 to +0.02 on
        the samples). So does a colour image whose noise has a level per pixel (a sensor's, back in its own
        terms: both passes there -0.01 / -0.03 more).

        Every other pass has its groups' references shifted by half their stride (``shifted``), between
        the last pass's: the patches' estimates then overlap in new places, as references twice as
        dense (by area) would, at next to no cost (a reference more per row and column). Held-out
        crops (never the benchmark), 6 of 256px / 12 of 128px, colour, sigma 10 / 15 / 25 / 50: +0.02 / +0.03 / +0.04 / +0.04 and +0.01 / +0.04 / +0.08 /
        +0.04 dB; a sensor's noise (the benchmark's; the second stabilised pass shifted, the pass in
        the image's terms not): +0.03 / +0.04; grey at sigma 10 (its second pass): +0.02.
        References every 3 pixels instead of 4 in every pass gained as much (patches of 7: +0.03 to
        +0.07) for 1.55 times the time (27 -> 42 s for a 1 MP photograph at sigma 25)."""
        if not getattr(self.prior, "data_filter", False) or not bool(torch.isfinite(result.x).all()):
            # (a prior that gave non-finite values, a diverged one, is said so by the caller's check of
            # the output; the filter's matching would index by them)
            return result
        x = data.pilot(result.x, y, physics, quick=self.quick)
        passes = torch.as_tensor(passes).expand(y.shape[0])
        for k in range(1 if self.quick else int(passes.max())):
            estimate = data.wiener(x, y, physics, groups=not self.quick, shifted=k % 2 == 1).clamp(0, 1)
            # An image of the batch that has taken its passes keeps its last estimate.
            x = estimate if k == 0 else torch.where((passes > k).view(-1, 1, 1, 1).to(x.device), estimate, x)
        return replace(result, x=x)

    def _solve(self, prior, y, physics, *, data, x0, refine, callback, generator) -> SolverResult:
        if self.mode == "latent":
            return csgm(y, physics, prior, x0=x0, data=data, steps=self.steps, lr=self.lr,
                        prior_weight=self.prior_weight, anchor=self.anchor, callback=callback)
        return joint_map(y, physics, prior, x0=x0, data=data, steps=self.steps, lr=self.lr,
                         gamma=self.gamma, prior_weight=self.prior_weight, anchor=self.anchor, refine=refine,
                         callback=callback, samples=self.samples, sampler=self.sampler, generator=generator)
