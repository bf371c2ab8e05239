"""The restoration of one batch of tensors, as a module: ``Reconstructor(prior)(y, physics)``.

:func:`restore.restore` cuts images into tiles and calls a :class:`Reconstructor` on each batch
of them; a caller with tensors (an experiment, a training loop, DeepInverse) calls it directly,
without tiling, and gets the latent code and the variance beside the image.

>>> from restore.reconstructor import Reconstructor
>>> from restore.physics import Downsampling
>>> from restore.fidelity import Gaussian
>>> result = Reconstructor("photo", steps=20)(y, Downsampling((256, 256), 4), data=Gaussian(1 / 255))  # doctest: +SKIP
>>> result.x, result.z                                                                                 # doctest: +SKIP
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .fidelity import DataTerm, Gaussian
from .physics import Physics
from .solver import ANCHORS, ENSEMBLES, SAMPLERS, SolverResult, csgm, joint_map

MODES = {"joint": joint_map, "latent": csgm}


class Reconstructor(nn.Module):
    """restore's solver as a module: ``forward(y, physics) -> SolverResult`` (``x``, ``z``, ``variance``).

    Parameters
    ----------
    prior : str or VAE
        ``"photo"``, ``"digits"``, a checkpoint path, or a loaded VAE (used as it is: its device
        and arithmetic are the caller's).
    steps : int
        Solver steps (0: the encoder's estimate, refined by the last x-step only).
    mode : {"joint", "latent"}
        Joint MAP over image and code (JPMAP), or over the code alone (CSGM).
    lr, prior_weight, anchor, samples, sampler, gamma, ensemble
        As :func:`restore.solver.joint_map`.
    """

    def __init__(self, prior="photo", *, steps: int = 30, mode: str = "joint", lr: float = 0.05,
                 prior_weight: float = 1.0, anchor: str = "prior", samples: int = 1, sampler: str = "encoder",
                 gamma: float | None = None, ensemble: int = 1):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be 'joint' or 'latent', got {mode!r}")
        if anchor not in ANCHORS or sampler not in SAMPLERS:
            raise ValueError(f"anchor must be one of {ANCHORS} and sampler one of {SAMPLERS}")
        if steps < 0 or samples < 1:
            raise ValueError(f"steps must be 0 or more and samples 1 or more, got {steps}, {samples}")
        if samples > 1 and mode != "joint":
            raise ValueError("posterior samples need the joint mode")
        if ensemble not in ENSEMBLES or (ensemble > 1 and (steps != 0 or mode != "joint")):
            raise ValueError(f"ensemble must be one of {ENSEMBLES}, and more than 1 only in the joint mode "
                             f"with 0 steps; got {ensemble} with {steps} steps")
        if isinstance(prior, (str, bytes)) or hasattr(prior, "__fspath__"):
            from .priors import load_prior
            prior = load_prior(str(prior))
        self.prior = prior
        self.steps, self.mode, self.lr, self.prior_weight, self.anchor = steps, mode, lr, prior_weight, anchor
        self.samples, self.sampler, self.gamma, self.ensemble = samples, sampler, gamma, ensemble

    def forward(self, y: torch.Tensor, physics: Physics, *, data: DataTerm | None = None,
                x0: torch.Tensor | None = None,
                refine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                callback: Callable[[int], None] | None = None, generator=None) -> SolverResult:
        """Restore ``y`` (N, C, h, w) observed through ``physics``.

        ``physics`` is one of restore's (:mod:`restore.physics`) or DeepInverse's (a linear one
        with a Gaussian noise model: its ``sigma`` becomes the data term). ``data`` defaults to
        that noise, or to Gaussian noise of 1/255 for physics without one; ``x0`` to
        ``A^T y``. The result's ``x`` is ``(N, C, H, W)`` in [0, 1].
        """
        if not isinstance(physics, Physics):
            from .interop import from_deepinv
            physics, noise = from_deepinv(physics)
            data = data if data is not None else noise
        data = data if data is not None else Gaussian(1 / 255)
        x0 = physics.A_adjoint(y) if x0 is None else x0
        if self.mode == "latent":
            return csgm(y, physics, self.prior, x0=x0, data=data, steps=self.steps, lr=self.lr,
                        prior_weight=self.prior_weight, anchor=self.anchor, callback=callback)
        return joint_map(y, physics, self.prior, x0=x0, data=data, steps=self.steps, lr=self.lr,
                         gamma=self.gamma, prior_weight=self.prior_weight, anchor=self.anchor, refine=refine,
                         callback=callback, samples=self.samples, sampler=self.sampler, generator=generator,
                         ensemble=self.ensemble)
