"""The data term's interface (:class:`DataTerm`) and what a term that can make its noise white returns
(:class:`Stabilised`)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import torch

from ..data import is_colour
from ..physics import LinearPhysics, Physics


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


@dataclass(frozen=True)
class Stabilised:
    """An observation carried where its noise is white and of one level: ``forward(y)`` is the
    transformed image plus noise of the term ``data``; ``inverse`` brings a restoration of it
    back, ``slope`` is the inverse's derivative (for the variance: ``slope^2`` times it)."""
    forward: Callable[[torch.Tensor], torch.Tensor]
    data: DataTerm
    inverse: Callable[[torch.Tensor], torch.Tensor]
    slope: Callable[[torch.Tensor], torch.Tensor]
