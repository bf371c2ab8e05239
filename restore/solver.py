"""MAP restoration in the latent space of a VAE prior: two solvers.

Given an observation ``y`` of ``A(x)`` (``A`` a :class:`~restore.physics.Physics`), a data
term ``F(A(x), y)`` that says how it was observed (:mod:`restore.fidelity`: Gaussian noise of
one level or one per pixel, a JPEG's quantisation, ...) and a VAE (decoder mean ``D``, decoder
scale ``gamma``, one number or one per pixel), both solvers start from the encoder's code of a
first guess ``x0`` and take Adam steps on the code ``z``. Nothing here knows what the noise is:
the data term does.

:func:`joint_map` (JPMAP, González, Almansa & Tan 2022) minimises over the image
``x`` and the code ``z``

    J(x, z) = F(A(x), y) + |(x - D(z)) / gamma|^2 / 2 + lambda |z - c|_P^2 / 2,

alternating the exact x-step (the data term's ``prox``) with one Adam step on ``z``. The
output is ``x``, which keeps detail the decoder cannot express; with a
per-pixel ``gamma`` the last x-step follows ``D(z)`` where the decoder is sure
and keeps the data where it is not; the data term's checks (``trusted_scale``, ``correct``)
keep it consistent with what was observed.

:func:`csgm` (Bora et al. 2017) minimises ``F(A(D(z)), y) + lambda |z - c|_P^2 / 2`` over
``z`` alone and returns ``D(z)`` as the data term corrects it; it needs a differentiable data
term.

The latent term is centred on ``c = 0`` with ``P = I`` (``anchor="prior"``, the
prior ``N(0, I)``), or on the encoder's posterior ``q(z | x0) = N(mu, s^2)`` with
``P = diag(1 / s^2)`` (``anchor="encoder"``): codes the data cannot reach (those
under a large hole) then stay where the encoder put them instead of shrinking to
the mean or drifting to fit the hole's border.

The solvers do no I/O, print nothing and wait for the device only where a
caller asks for the objective's value (``record_objective``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .fidelity import DataTerm
from .model import VAE, no_context
from .physics import LinearPhysics, Physics

ANCHORS = ("prior", "encoder")
SAMPLERS = ("encoder", "langevin")


@dataclass
class SolverResult:
    x: torch.Tensor                 # the restored image, (N, C, H, W), clamped to [0, 1]
    z: torch.Tensor                 # the final latent code
    objective: list[float] = field(default_factory=list)  # J per image, at the start and after each step (if recorded)
    variance: torch.Tensor | None = None   # with samples: the posterior variance per pixel, (N, 1, H, W)


def joint_map(y: torch.Tensor, physics: LinearPhysics, vae: VAE, *, x0: torch.Tensor, data: DataTerm,
              steps: int = 30, lr: float = 0.05, gamma: float | None = None, prior_weight: float = 1.0,
              anchor: str = "prior", refine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
              callback: Callable[[int], None] | None = None, record_objective: bool = False,
              samples: int = 1, sampler: str = "encoder", generator: torch.Generator | None = None) -> SolverResult:
    """Joint MAP over image and code (JPMAP), and optionally posterior samples around it.

    Parameters
    ----------
    y : tensor (N, C, h, w)
        Observation, pixel values in [0, 1].
    physics : LinearPhysics
        The forward model ``A``.
    vae : VAE
        The prior.
    x0 : tensor (N, C, H, W)
        First guess of the image, whose code starts the search.
    data : DataTerm
        How ``y`` was observed, e.g. ``Gaussian(sigma)`` with ``sigma`` in [0, 1] units.
    steps : int
        Adam steps on the code; 0 returns the encoder-only estimate.
    lr : float
        Adam step size.
    gamma : float, optional
        Decoder standard deviation; default the one the VAE learned (per
        pixel, for a prior with ``pixel_scale``, in the last x-step).
    prior_weight : float
        ``lambda``: 1 is the Bayesian value; lower trusts the data more.
    anchor : {"prior", "encoder"}
        Centre of the latent term (see the module's docstring).
    refine : callable, optional
        ``refine(x, d)`` improves the last x-step given the decoder's image
        ``d`` (inpainting carries the decoder's error into the holes).
    callback : callable, optional
        Called as ``callback(step)`` after every step.
    record_objective : bool
        Record ``J`` per image before and after every step (costs a decode
        and a device synchronisation per step).
    samples : int
        1: the MAP estimate. More: the mean of that many posterior samples
        (see :func:`posterior_samples`), with their variance per pixel.
    sampler : {"encoder", "langevin"}
        How the samples are drawn.
    generator : torch.Generator or list of them, optional
        The samples' random numbers, one generator or one per image (default one seeded
        with 0; the caller's global generator is never used).
    """
    _check(data, steps, anchor)
    if samples < 1 or sampler not in SAMPLERS:
        raise ValueError(f"samples must be 1 or more and sampler 'encoder' or 'langevin', got {samples}, {sampler!r}")
    # The search over z uses one scale for the image: per-pixel weights 1/gamma^2 span three
    # orders of magnitude and leave a few dozen Adam steps badly conditioned (measured on the
    # digits test split: 25.6 dB at x2 against 27.2 with one scale). The per-pixel scale, where the
    # prior has one, decides the last x-step: how much of the data each pixel keeps.
    search_gamma = float(vae.gamma.detach()) if gamma is None else float(gamma)

    def x_step(d, warm):
        return data.prox(d, y, physics, search_gamma**2, x0=warm)

    def last_x_step(code, warm=None):
        d, g = vae.decode_with_scale(code)
        g = data.trusted_scale(d, g if gamma is None else search_gamma, y, physics)
        x = data.correct(data.prox(d, y, physics, g**2, x0=warm), y, physics)
        return x if refine is None else refine(x, d)

    def objective(x, d, code) -> float:
        coupling = ((x - d) ** 2).sum() / (2 * search_gamma**2)
        return float(data.value(physics.A(x), y) + coupling + latent_term(code)) / y.shape[0]

    def result(code, x_map, history=()):
        if samples == 1:
            return SolverResult(x=physics.clipped(x_map), z=code, objective=list(history))
        mean, variance = posterior_samples(
            code, x_map, y, physics, vae, data=data, count=samples, sampler=sampler, generator=generator,
            last_x_step=last_x_step, x_step=x_step, search_gamma=search_gamma, latent_term=latent_term,
            fixed_gamma=gamma, context=context)
        return SolverResult(x=physics.clipped(mean), z=code, objective=list(history), variance=variance)

    context = encoder_context(data, physics, x0)
    z0, latent_term = _start(vae, x0, prior_weight, anchor, context)
    with torch.no_grad():
        if steps == 0:
            return result(z0, last_x_step(z0))
        d = vae.decode(z0)
        x = x_step(d, None)
        history = [objective(x, d, z0)] if record_objective else []

    z = z0.clone().requires_grad_(True)
    adam = torch.optim.Adam([z], lr=lr)
    for step in range(steps):
        d = vae.decode(z)
        with torch.no_grad():       # x-step: the exact minimiser of J for this decoder output
            x = x_step(d.detach(), x)
        loss = ((x - d) ** 2).sum() / (2 * search_gamma**2) + latent_term(z)
        _adam_step(adam, z, loss)
        if record_objective:
            with torch.no_grad():
                history.append(objective(x, vae.decode(z), z))
        if callback is not None:
            callback(step + 1)
    with torch.no_grad():
        x = last_x_step(z, warm=x)
    return result(z.detach(), x, history)


def posterior_samples(z, x, y, physics, vae, *, data, count, sampler, generator, last_x_step, x_step,
                      search_gamma, latent_term, langevin_step: float = 0.05, conditional: bool = True,
                      fixed_gamma: float | None = None, context: torch.Tensor | None = None):
    """The mean of ``count`` posterior samples of the image, and their variance per pixel.

    ``encoder``: codes drawn from the encoder's posterior around the solver's code,
    ``z + s * eps`` with ``s`` the encoder's standard deviation at the restored image ``x``.
    ``langevin``: unadjusted Langevin steps on the solver's objective in ``z`` from the
    solver's code, preconditioned by ``s^2``: ``z - eta s^2 grad J + sqrt(2 eta) s eps``.
    Each code's image is the x-step's minimiser for it (the data where there are data, the
    decoder where there are none). The variance adds, to the spread of those images, the
    variance an image keeps given its code: ``1 / (1/g^2 + p)`` per pixel, ``g`` the decoder's
    scale and ``p`` the data's precision there (``data.precision``; ``conditional=False`` leaves
    it out). ``context`` is what the encoder was told of the observation (:func:`encoder_context`).
    """
    with torch.no_grad():
        _, logvar = vae.encode(x.clamp(0, 1), context)
        scale = torch.exp(0.5 * logvar)
        total = torch.zeros_like(x)
        square = torch.zeros_like(x)
        kept = torch.zeros_like(x[:, :1])
        seen = data.precision(physics, x)
    code = z
    if generator is None:            # one stream for all the samples, never the caller's global one
        generator = torch.Generator(z.device).manual_seed(0)
    for _ in range(count):
        noise = _normal(z, generator)
        if sampler == "encoder":
            code = z + scale * noise
        else:
            with torch.enable_grad():     # also when the solver itself took no step
                code = code.detach().requires_grad_(True)
                d = vae.decode(code)
                with torch.no_grad():
                    x = x_step(d.detach(), x)
                loss = ((x - d) ** 2).sum() / (2 * search_gamma**2) + latent_term(code)
                (grad,) = torch.autograd.grad(loss, code)
            code = (code - langevin_step * scale**2 * grad + (2 * langevin_step) ** 0.5 * scale * noise).detach()
        with torch.no_grad():
            sample = last_x_step(code, warm=x)
            g = vae.decode_with_scale(code)[1] if fixed_gamma is None else fixed_gamma
            total += sample
            square += sample**2
            kept += (1 / (1 / torch.as_tensor(g) ** 2 + seen)).mean(1, keepdim=True).expand_as(kept)
    mean = total / count
    spread = (square / count - mean**2).clamp_min(0).mean(1, keepdim=True)
    return mean, spread + kept / count if conditional else spread


def csgm(y: torch.Tensor, physics: Physics, vae: VAE, *, x0: torch.Tensor, data: DataTerm,
         steps: int = 30, lr: float = 0.05, prior_weight: float = 1.0, anchor: str = "prior",
         callback: Callable[[int], None] | None = None, record_objective: bool = False) -> SolverResult:
    """MAP over the code alone (CSGM); returns ``D(z)`` as the data term corrects it.

    Parameters as :func:`joint_map`; ``physics`` may be non-linear (only ``A`` is used, through
    autograd), and ``data`` must be differentiable (a ``ValueError`` otherwise: a constraint
    such as a JPEG's has no gradient to follow; use :func:`joint_map`).
    """
    _check(data, steps, anchor)
    if not data.differentiable:
        raise ValueError(f"the latent mode needs a differentiable data term, not {data!r}; use the joint mode")

    def objective(code) -> float:
        return float(data.value(physics.A(vae.decode(code)), y) + latent_term(code)) / y.shape[0]

    z0, latent_term = _start(vae, x0, prior_weight, anchor, encoder_context(data, physics, x0))
    with torch.no_grad():
        history = [objective(z0)] if record_objective else []
    z = z0.clone().requires_grad_(True)
    adam = torch.optim.Adam([z], lr=lr)
    for step in range(steps):
        loss = data.value(physics.A(vae.decode(z)), y) + latent_term(z)
        _adam_step(adam, z, loss)
        if record_objective:
            with torch.no_grad():
                history.append(objective(z))
        if callback is not None:
            callback(step + 1)
    with torch.no_grad():
        x = data.correct(vae.decode(z), y, physics)
    return SolverResult(x=physics.clipped(x), z=z.detach(), objective=history)


def _normal(like: torch.Tensor, generator) -> torch.Tensor:
    """Standard normal noise shaped as ``like``: from one generator, or one per image of the batch
    (so that an image's samples do not depend on which images share its batch)."""
    if isinstance(generator, torch.Generator):
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return torch.stack([torch.randn(like.shape[1:], generator=g, device=like.device, dtype=like.dtype)
                        for g in generator])


def _check(data: DataTerm, steps: int, anchor: str) -> None:
    if not isinstance(data, DataTerm):
        raise TypeError(f"data must be a data term such as Gaussian(sigma), got {type(data).__name__}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be 'prior' or 'encoder', got {anchor!r}")


#: The unit of the noise map an encoder is told (:func:`encoder_context`): about the strongest
#: noise it trains on (50/255), so that the map is of the order of 1. It stops at 5 units, the
#: pixel's whole range.
NOISE_UNIT = 0.2


@torch.no_grad()
def encoder_context(data: DataTerm, physics: Physics, x: torch.Tensor) -> torch.Tensor:
    """What the data say of each pixel of ``x`` (``(N, C, H, W)``, the first guess), as an encoder
    told the context reads it beside the image: ``(N, 2, H, W)``, the noise's standard deviation
    at the pixel in units of :data:`NOISE_UNIT` (0 where it is not observed), and 1 where it is
    not observed, both from ``data.precision``, or beyond the observation (``physics.beyond``). A forward model that cannot say how much each
    pixel is observed (no ``gram_diagonal``), or a data term whose damage is not noise (a JPEG's
    rounding: ``noise_like`` false), gives zeros: the encoder then guesses, as one without
    context does."""
    if not data.noise_like:
        return no_context(x)
    try:
        precision = data.precision(physics, x).to(x.dtype)
    except NotImplementedError:
        return no_context(x)
    unobserved = precision <= 0
    beyond = physics.beyond(x)
    if beyond is not None:
        # A blur's margin: the data barely reach it (its noise map would read up to 5 units) and
        # training crops it away, so it is told as a hole. Measured on 12 held-out crops: +0.06 /
        # +0.05 dB (Gaussian 2 / motion 15) with the photo prior; the large one, read the margin's
        # noise map, left ringing along the borders (the moon: 30.9 dB, 39.2 told as a hole).
        unobserved = unobserved | beyond
    std = precision.clamp_min(1).rsqrt() / NOISE_UNIT
    return torch.cat([std.masked_fill(unobserved, 0), unobserved.to(x.dtype)], 1)


@torch.no_grad()
def _start(vae: VAE, x0: torch.Tensor, prior_weight: float, anchor: str, context: torch.Tensor):
    """The encoder's code of the first guess (told ``context``), and the latent term
    ``lambda |z - c|_P^2 / 2``."""
    # Channels-last tensors take faster convolution kernels on the CPU (measured: one decode
    # of a 256x256 tile 0.12 s against 0.17 s), and the layout carries through every step.
    z0, logvar = vae.encode(x0.clamp(0, 1).contiguous(memory_format=torch.channels_last),
                            context.contiguous(memory_format=torch.channels_last))
    if z0.dim() == 4:              # a spatial latent (the digits prior's is a vector)
        z0 = z0.contiguous(memory_format=torch.channels_last)
    centre, precision = (z0, torch.exp(-logvar)) if anchor == "encoder" else (torch.zeros_like(z0), 1.0)

    def latent_term(code):
        return prior_weight * (precision * (code - centre) ** 2).sum() / 2
    return z0, latent_term


def _adam_step(adam: torch.optim.Optimizer, z: torch.Tensor, loss: torch.Tensor) -> None:
    # The gradient with respect to z only: the prior's weights are neither updated nor touched.
    (z.grad,) = torch.autograd.grad(loss, z)
    adam.step()
