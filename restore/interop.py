"""DeepInverse interop (``pip install -e ".[deepinv]"``): each library's pieces in the other.

* :func:`from_deepinv` -- a DeepInverse linear physics (``Denoising``, ``Inpainting``,
  ``Downsampling``, ``Blur``, ...) with its ``GaussianNoise`` as restore's forward model and
  data term; :class:`~restore.reconstructor.Reconstructor` accepts such physics directly.
* :func:`deepinv_reconstructor` -- restore's prior where DeepInverse expects a reconstructor,
  ``model(y, physics) -> x`` (``deepinv.test``, trainers, metrics).
* :func:`deepinv_denoiser` -- restore's prior as a DeepInverse denoiser, ``model(x, sigma) -> x``
  (plug-and-play algorithms, ``ArtifactRemoval``).

>>> import deepinv as dinv                                                           # doctest: +SKIP
>>> from restore.interop import deepinv_reconstructor
>>> physics = dinv.physics.Inpainting((3, 256, 256), mask=0.5, noise_model=dinv.physics.GaussianNoise(0.02))  # doctest: +SKIP
>>> model = deepinv_reconstructor("photo", steps=7)                                  # doctest: +SKIP
>>> x_hat = model(physics(x), physics)                                               # doctest: +SKIP
"""
from __future__ import annotations

import torch

from .fidelity import Gaussian
from .physics import LinearPhysics
from .tasks.base import CLEAN_SIGMA


def _deepinv():
    try:
        import deepinv
    except ImportError:
        raise ImportError("DeepInverse is not installed: pip install -e \".[deepinv]\"") from None
    return deepinv


class DeepinvPhysics(LinearPhysics):
    """A DeepInverse linear physics as restore's forward model: its ``A``, ``A_adjoint`` and, for
    one ``gamma`` and no weights, its own ``prox_l2`` (same convention as restore's)."""

    def __init__(self, physics):
        super().__init__()
        self.inner = physics
        dinv = _deepinv()
        blurs = tuple(getattr(dinv.physics, name) for name in ("Blur", "BlurFFT", "SpaceVaryingBlur")
                      if hasattr(dinv.physics, name))
        self.well_posed = not isinstance(physics, blurs)
        # A mask or the identity sees each pixel alone: the clip to [0, 1] is all there is.
        self.pixelwise = isinstance(physics, (dinv.physics.Denoising, dinv.physics.Inpainting))
        # A physics made in float64 (.double(), torch's default dtype set so) takes its own dtype
        # only: the solver's tensors are the prior's float32.
        own = [t.dtype for t in (*physics.parameters(), *physics.buffers()) if t.is_floating_point()]
        self.dtype = own[0] if own else None

    def _inner(self, method, *tensors, **options):
        """``method`` of the DeepInverse physics on ``tensors`` in its dtype, the result in theirs."""
        if self.dtype is None or tensors[0].dtype == self.dtype:
            return method(*tensors, **options)
        return method(*(t.to(self.dtype) for t in tensors), **options).to(tensors[0].dtype)

    def A(self, x):
        return self._inner(self.inner.A, x)

    def A_adjoint(self, y):
        return self._inner(self.inner.A_adjoint, y)

    def gram_diagonal(self, x):
        """``A^T A 1``: the diagonal of ``A^T A`` where that is diagonal (a mask, the identity), an
        approximation otherwise (used only for the posterior samples' variance)."""
        return self.A_adjoint(self.A(torch.ones_like(x))).mean(1, keepdim=True)

    def prox_l2(self, z, y, gamma, *, x0=None, weight=None):
        if weight is None and not (torch.is_tensor(gamma) and gamma.numel() > 1):
            return self._inner(self.inner.prox_l2, z, y, gamma=float(gamma))
        return super().prox_l2(z, y, gamma, x0=x0, weight=weight)


def from_deepinv(physics) -> tuple[DeepinvPhysics, Gaussian]:
    """A DeepInverse linear physics as restore's ``(physics, data term)``.

    The data term is the physics' Gaussian noise (one level, or one per image of the batch),
    at least 1/255 (restore's assumption for a clean observation). Other noise models are a
    ``ValueError``: restore has no data term for them here.
    """
    dinv = _deepinv()
    if not isinstance(physics, dinv.physics.LinearPhysics):
        raise ValueError(f"restore takes DeepInverse's linear physics, not {type(physics).__name__}")
    noise = getattr(physics, "noise_model", None)
    if noise is None or type(noise).__name__ == "ZeroNoise":
        sigma = 0.0
    elif isinstance(noise, dinv.physics.GaussianNoise):
        sigma = noise.sigma
    else:
        raise ValueError(f"restore's data terms take Gaussian noise; this physics has {type(noise).__name__}")
    floor = CLEAN_SIGMA / 255
    if torch.is_tensor(sigma) and sigma.numel() > 1:
        level = sigma.detach().float().clamp_min(floor).view(-1, 1, 1, 1)
    else:
        level = max(float(sigma), floor)
    return DeepinvPhysics(physics), Gaussian(level)


def deepinv_reconstructor(prior="photo", **options):
    """restore's :class:`~restore.reconstructor.Reconstructor` as a ``deepinv.models.Reconstructor``:
    ``model(y, physics)`` returns the restored image (options as the Reconstructor's)."""
    dinv = _deepinv()
    from .reconstructor import Reconstructor

    class RestoreReconstructor(dinv.models.Reconstructor):
        def __init__(self):
            super().__init__()
            self.inner = Reconstructor(prior, **options)

        def forward(self, y, physics, **kwargs):
            return self.inner(y, physics).x
    return RestoreReconstructor()


def deepinv_denoiser(prior="photo", **options):
    """restore's prior as a ``deepinv.models.Denoiser``: ``model(x, sigma)``, ``sigma`` in [0, 1]
    units (a number, or one per image), returns the denoised image. Options as the
    :class:`~restore.reconstructor.Reconstructor`'s (default ``steps=0``, restore's denoiser)."""
    dinv = _deepinv()
    from .physics import Denoising
    from .reconstructor import Reconstructor

    class RestoreDenoiser(dinv.models.Denoiser):
        def __init__(self):
            super().__init__()
            self.inner = Reconstructor(prior, **{"steps": 0, **options})

        def forward(self, x, sigma, **kwargs):
            level = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).clamp_min(CLEAN_SIGMA / 255)
            level = level.view(-1, 1, 1, 1) if level.numel() > 1 else float(level)
            return self.inner(x, Denoising(), data=Gaussian(level)).x
    return RestoreDenoiser()
