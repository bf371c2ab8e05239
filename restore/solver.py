"""MAP restoration in the latent space of a VAE prior: two solvers.

Given ``y = A(x) + n`` (``A`` a :class:`~restore.physics.LinearPhysics`, noise of
level ``sigma``) and a VAE (decoder mean ``D``, decoder scale ``gamma``, one
number or one per pixel), both solvers start from the encoder's code of a first
guess ``x0`` and take Adam steps on the code ``z``.

:func:`joint_map` (JPMAP, González, Almansa & Tan 2022) minimises over the image
``x`` and the code ``z``

    J(x, z) = |A(x) - y|^2 / (2 sigma^2) + |(x - D(z)) / gamma|^2 / 2 + lambda |z - c|_P^2 / 2,

alternating the exact x-step (``A.prox_l2``) with one Adam step on ``z``. The
output is ``x``, which keeps detail the decoder cannot express; with a
per-pixel ``gamma`` the last x-step follows ``D(z)`` where the decoder is sure
and keeps the data where it is not.

:func:`csgm` (Bora et al. 2017) minimises ``|A(D(z)) - y|^2 / (2 sigma^2) +
lambda |z - c|_P^2 / 2`` over ``z`` alone and returns ``D(z)``.

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

from .model import VAE
from .physics import LinearPhysics

ANCHORS = ("prior", "encoder")
SAMPLERS = ("encoder", "langevin")


@dataclass
class SolverResult:
    x: torch.Tensor                 # the restored image, (N, C, H, W), clamped to [0, 1]
    z: torch.Tensor                 # the final latent code
    objective: list[float] = field(default_factory=list)  # J per image, at the start and after each step (if recorded)
    variance: torch.Tensor | None = None   # with samples: the posterior variance per pixel, (N, 1, H, W)


def joint_map(y: torch.Tensor, physics: LinearPhysics, vae: VAE, *, x0: torch.Tensor, sigma: float,
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
    sigma : float
        Noise standard deviation of ``y`` in [0, 1] units (> 0).
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
    _check(sigma, steps, anchor)
    if samples < 1 or sampler not in SAMPLERS:
        raise ValueError(f"samples must be 1 or more and sampler 'encoder' or 'langevin', got {samples}, {sampler!r}")
    # The search over z uses one scale for the image: per-pixel weights 1/gamma^2 span three
    # orders of magnitude and leave a few dozen Adam steps badly conditioned (measured on the
    # digits test split: 25.6 dB at x2 against 27.2 with one scale). The per-pixel scale, where the
    # prior has one, decides the last x-step: how much of the data each pixel keeps.
    search_gamma = float(vae.gamma.detach()) if gamma is None else float(gamma)
    search_prox = (search_gamma / sigma) ** 2

    def last_x_step(code, warm=None):
        d, g = vae.decode_with_scale(code)
        g = consistent_scale(d, g if gamma is None else search_gamma, y, physics, sigma)
        x = consistent_means(physics.prox_l2(d, y, (g / sigma) ** 2, x0=warm), y, physics, sigma)
        return x if refine is None else refine(x, d)

    def objective(x, d, code) -> float:
        data = ((physics.A(x) - y) ** 2).sum() / (2 * sigma**2)
        coupling = ((x - d) ** 2).sum() / (2 * search_gamma**2)
        return float(data + coupling + latent_term(code)) / y.shape[0]

    def result(code, x_map, history=()):
        if samples == 1:
            return SolverResult(x=x_map.clamp(0, 1), z=code, objective=list(history))
        mean, variance = posterior_samples(
            code, x_map, y, physics, vae, sigma=sigma, count=samples, sampler=sampler, generator=generator,
            last_x_step=last_x_step, search_prox=search_prox, search_gamma=search_gamma, latent_term=latent_term,
            fixed_gamma=gamma)
        return SolverResult(x=mean.clamp(0, 1), z=code, objective=list(history), variance=variance)

    z0, latent_term = _start(vae, x0, prior_weight, anchor)
    with torch.no_grad():
        if steps == 0:
            return result(z0, last_x_step(z0))
        d = vae.decode(z0)
        x = physics.prox_l2(d, y, search_prox)
        history = [objective(x, d, z0)] if record_objective else []

    z = z0.clone().requires_grad_(True)
    adam = torch.optim.Adam([z], lr=lr)
    for step in range(steps):
        d = vae.decode(z)
        with torch.no_grad():       # x-step: the exact minimiser of J for this decoder output
            x = physics.prox_l2(d.detach(), y, search_prox, x0=x)
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


def posterior_samples(z, x, y, physics, vae, *, sigma, count, sampler, generator, last_x_step, search_prox,
                      search_gamma, latent_term, langevin_step: float = 0.05, conditional: bool = True,
                      fixed_gamma: float | None = None):
    """The mean of ``count`` posterior samples of the image, and their variance per pixel.

    ``encoder``: codes drawn from the encoder's posterior around the solver's code,
    ``z + s * eps`` with ``s`` the encoder's standard deviation at the restored image ``x``.
    ``langevin``: unadjusted Langevin steps on the solver's objective in ``z`` from the
    solver's code, preconditioned by ``s^2``: ``z - eta s^2 grad J + sqrt(2 eta) s eps``.
    Each code's image is the x-step's minimiser for it (the data where there are data, the
    decoder where there are none). The variance adds, to the spread of those images, the
    variance an image keeps given its code: ``1 / (1/g^2 + a/sigma^2)`` per pixel, ``g``
    the decoder's scale and ``a`` the diagonal of ``A^T A`` (``conditional=False`` leaves it out).
    """
    with torch.no_grad():
        _, logvar = vae.encode(x.clamp(0, 1))
        scale = torch.exp(0.5 * logvar)
        total = torch.zeros_like(x)
        square = torch.zeros_like(x)
        kept = torch.zeros_like(x[:, :1])
        seen = physics.gram_diagonal(x)
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
                    x = physics.prox_l2(d.detach(), y, search_prox, x0=x)
                loss = ((x - d) ** 2).sum() / (2 * search_gamma**2) + latent_term(code)
                (grad,) = torch.autograd.grad(loss, code)
            code = (code - langevin_step * scale**2 * grad + (2 * langevin_step) ** 0.5 * scale * noise).detach()
        with torch.no_grad():
            sample = last_x_step(code, warm=x)
            g = vae.decode_with_scale(code)[1] if fixed_gamma is None else fixed_gamma
            total += sample
            square += sample**2
            kept += (1 / (1 / torch.as_tensor(g) ** 2 + seen / sigma**2)).mean(1, keepdim=True).expand_as(kept)
    mean = total / count
    spread = (square / count - mean**2).clamp_min(0).mean(1, keepdim=True)
    return mean, spread + kept / count if conditional else spread


def csgm(y: torch.Tensor, physics: LinearPhysics, vae: VAE, *, x0: torch.Tensor, sigma: float,
         steps: int = 30, lr: float = 0.05, prior_weight: float = 1.0, anchor: str = "prior",
         callback: Callable[[int], None] | None = None, record_objective: bool = False) -> SolverResult:
    """MAP over the code alone (CSGM); returns ``D(z)``. Parameters as :func:`joint_map`."""
    _check(sigma, steps, anchor)

    def objective(code) -> float:
        data = ((physics.A(vae.decode(code)) - y) ** 2).sum() / (2 * sigma**2)
        return float(data + latent_term(code)) / y.shape[0]

    z0, latent_term = _start(vae, x0, prior_weight, anchor)
    with torch.no_grad():
        history = [objective(z0)] if record_objective else []
    z = z0.clone().requires_grad_(True)
    adam = torch.optim.Adam([z], lr=lr)
    for step in range(steps):
        loss = ((physics.A(vae.decode(z)) - y) ** 2).sum() / (2 * sigma**2) + latent_term(z)
        _adam_step(adam, z, loss)
        if record_objective:
            with torch.no_grad():
                history.append(objective(z))
        if callback is not None:
            callback(step + 1)
    with torch.no_grad():
        x = consistent_means(vae.decode(z), y, physics, sigma)
    return SolverResult(x=x.clamp(0, 1), z=z.detach(), objective=history)


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
    """
    local = physics.spread(_local_mean((y - physics.A(d)) ** 2, physics.A(torch.ones_like(d)), CONSISTENCY_WINDOW))
    variance = torch.as_tensor(g, dtype=d.dtype, device=d.device) ** 2
    noise = torch.as_tensor(sigma, dtype=d.dtype, device=d.device) ** 2
    grown = torch.where(local > CONSISTENCY_THRESHOLD * (noise + variance), torch.maximum(variance, local - noise),
                        variance)
    return grown.sqrt()


#: Side of the window (observed pixels) whose mean residual is tested against the noise.
MEAN_WINDOW = 15
#: Standard errors of the noise's window mean that a mean residual may reach before it is corrected.
MEAN_TOLERANCE = 3.0


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
    expected, slope = clipped_mean(physics.A(x), sigma)
    seen = physics.A(torch.ones_like(x))
    mean = _local_mean(y - expected, seen, k)
    excess = mean.sign() * (mean.abs() - MEAN_TOLERANCE * sigma / k).clamp_min(0)
    # One Newton step through the clipping: near 0 or 1 a change of the image moves the mean of
    # what is observed less than itself.
    return x + physics.spread_signed(excess / _local_mean(slope, seen, k).clamp_min(0.1))


def _local_mean(v: torch.Tensor, weight: torch.Tensor, k: int) -> torch.Tensor:
    """The mean of ``v`` over each ``k`` x ``k`` window of observations, weighted by ``weight``
    (``A`` of an image of ones: 0 where an observation is missing, as under an inpainting hole)."""
    def pool(t):
        return torch.nn.functional.avg_pool2d(t, k, stride=1, padding=k // 2)
    total = pool(weight.expand_as(v))
    return torch.where(total > 1e-6, pool(v * weight) / total.clamp_min(1e-6), 0)


def clipped_mean(mu: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``E[clip(mu + n, 0, 1)]`` for ``n ~ N(0, sigma^2)``, and its derivative in ``mu``.

    Files hold pixels in [0, 1], so the noise of a saturated colour is cut off on one side and
    its mean moves inwards (by 4 levels in 255 at 0 or 255 under noise of 10): a consistent
    restoration is compared with that mean, not with ``mu`` itself.
    """
    s = sigma.clamp_min(1e-6)
    a, b = (0 - mu) / s, (1 - mu) / s
    cdf_a, cdf_b = torch.special.ndtr(a), torch.special.ndtr(b)
    pdf_a, pdf_b = torch.exp(-a**2 / 2) / (2 * torch.pi) ** 0.5, torch.exp(-b**2 / 2) / (2 * torch.pi) ** 0.5
    return (1 - cdf_b) + mu * (cdf_b - cdf_a) + s * (pdf_a - pdf_b), cdf_b - cdf_a


def _normal(like: torch.Tensor, generator) -> torch.Tensor:
    """Standard normal noise shaped as ``like``: from one generator, or one per image of the batch
    (so that an image's samples do not depend on which images share its batch)."""
    if isinstance(generator, torch.Generator):
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return torch.stack([torch.randn(like.shape[1:], generator=g, device=like.device, dtype=like.dtype)
                        for g in generator])


def _check(sigma: float, steps: int, anchor: str) -> None:
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be 'prior' or 'encoder', got {anchor!r}")


@torch.no_grad()
def _start(vae: VAE, x0: torch.Tensor, prior_weight: float, anchor: str):
    """The encoder's code of the first guess, and the latent term ``lambda |z - c|_P^2 / 2``."""
    # Channels-last tensors take faster convolution kernels on the CPU (measured: one decode
    # of a 256x256 tile 0.12 s against 0.17 s), and the layout carries through every step.
    z0, logvar = vae.encode(x0.clamp(0, 1).contiguous(memory_format=torch.channels_last))
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
