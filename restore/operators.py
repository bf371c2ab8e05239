"""Forward operators: how a clean image ``x`` becomes what we observe.

Every task shares one data model,

    y = A(x) + n,    n ~ N(0, sigma^2 I),

and differs only in ``A``. An operator exposes

* ``forward(x)``  -- ``A(x)``;
* ``adjoint(y)``  -- ``A^T(y)``;
* ``initial_guess(y)`` -- a first image to hand to the encoder;
* ``data_consistency(d, y, sigma, gamma)`` -- the solver's x-step,
  ``argmin_x |A(x) - y|^2 / (2 sigma^2) + |(x - d) / gamma|^2 / 2`` (``gamma``
  one number or one per pixel): closed form where ``A^T A`` is diagonal,
  conjugate gradients otherwise;
* ``final_step(d, y, sigma, gamma)`` -- the last x-step, which makes the
  output (by default ``data_consistency``).

A new restoration task is one new subclass; the solver never changes.
Tensors are ``(N, C, H, W)`` floats with pixel values in [0, 1].
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache

import numpy as np
import torch
from torch.nn import functional as F

from .resize import imresize, resize_matrices


class ForwardOperator(ABC):
    """Base class; subclasses implement ``forward`` and ``adjoint``."""

    #: One observed pixel covers ``scale x scale`` image pixels.
    scale: int = 1

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A(x)``."""

    @abstractmethod
    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T(y)``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def initial_guess(self, y: torch.Tensor) -> torch.Tensor:
        """A first estimate of ``x`` from ``y`` (default: ``A^T y``)."""
        return self.adjoint(y)

    def observe(self, x: torch.Tensor, sigma: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Simulate an observation ``A(x) + n`` with noise level ``sigma``."""
        y = self.forward(x)
        if sigma > 0:
            y = y + sigma * torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        return y

    def data_consistency(self, d: torch.Tensor, y: torch.Tensor, sigma: float, gamma: float | torch.Tensor,
                         x0: torch.Tensor | None = None, iterations: int = 25) -> torch.Tensor:
        """Solve ``(A^T A + diag(lam)) x = A^T y + lam d`` with ``lam = sigma^2 / gamma^2``.

        Conjugate gradients, warm-started at ``x0`` (or ``d``); batched over N.
        """
        lam = (sigma / gamma) ** 2
        x = (d if x0 is None else x0).clone()
        rhs = self.adjoint(y) + lam * d
        r = rhs - self.adjoint(self.forward(x)) - lam * x
        p = r.clone()
        rr = _dot(r, r)
        for _ in range(iterations):
            ap = self.adjoint(self.forward(p)) + lam * p
            alpha = rr / _dot(p, ap).clamp_min(1e-20)
            x = x + alpha * p
            r = r - alpha * ap
            rr_new = _dot(r, r)
            if float(rr_new.max()) < 1e-12:
                break
            p = r + (rr_new / rr.clamp_min(1e-20)) * p
            rr = rr_new
        return x

    def final_step(self, d: torch.Tensor, y: torch.Tensor, sigma: float, gamma: float | torch.Tensor,
                   x0: torch.Tensor | None = None) -> torch.Tensor:
        """The solver's last x-step, which makes the output; by default the same as every other."""
        return self.data_consistency(d, y, sigma, gamma, x0=x0)

    def to(self, device) -> "ForwardOperator":
        """The operator with its per-pixel data (if any) on ``device``."""
        return self

    def crop(self, windows: list[tuple[int, int, int, int]]) -> "ForwardOperator":
        """The operator restricted to tiles ``(top, left, height, width)`` of ``y``.

        Operators without per-pixel data are the same on every tile.
        """
        return self


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product, shaped to broadcast over (N, C, H, W)."""
    return (a * b).flatten(1).sum(1).view(-1, 1, 1, 1)


class Denoise(ForwardOperator):
    """``A = I``: additive white Gaussian noise."""

    def forward(self, x):
        return x

    def adjoint(self, y):
        return y

    def data_consistency(self, d, y, sigma, gamma, x0=None, iterations=0):
        # (1/sigma^2 + 1/gamma^2) x = y/sigma^2 + d/gamma^2
        return (gamma**2 * y + sigma**2 * d) / (sigma**2 + gamma**2)


class Inpaint(ForwardOperator):
    """``A = diag(m)``: only pixels where ``m = 1`` are observed.

    Parameters
    ----------
    missing : tensor of shape (N or 1, 1, H, W)
        1 (or True) where a pixel is missing and must be filled.
    """

    def __init__(self, missing: torch.Tensor):
        if missing.dim() != 4 or missing.shape[1] != 1:
            raise ValueError(f"missing must have shape (N, 1, H, W), got {tuple(missing.shape)}")
        self.observed = 1.0 - missing.float()

    def forward(self, x):
        return x * self.observed

    def adjoint(self, y):
        return y * self.observed

    def initial_guess(self, y):
        return fill_holes(y, self.observed)

    def data_consistency(self, d, y, sigma, gamma, x0=None, iterations=0):
        blend = (gamma**2 * y + sigma**2 * d) / (sigma**2 + gamma**2)
        return self.observed * blend + (1 - self.observed) * d

    def final_step(self, d, y, sigma, gamma, x0=None):
        # The decoder's errors are not white: they follow the image's structures, so the
        # error it makes at the observed pixels around a hole is the best guess of the
        # error it makes inside. Carry it over with the smooth fill (its conditional mean
        # under the fill's Gaussian model): a smooth fill of y plus the detail of D(z)
        # that a smooth fill of D(z) itself would miss.
        x = self.data_consistency(d, y, sigma, gamma)
        error = fill_holes((x - d) * self.observed, self.observed)
        return x + (1 - self.observed) * error

    def to(self, device):
        return Inpaint(1.0 - self.observed.to(device))

    def crop(self, windows):
        if self.observed.shape[0] != 1:
            raise ValueError("crop takes an operator over one image")
        # Windows may reach into the padding the tiler adds at the bottom and right.
        bottom = max(t + h for t, _, h, _ in windows) - self.observed.shape[-2]
        right = max(l + w for _, l, _, w in windows) - self.observed.shape[-1]
        observed = F.pad(self.observed, (0, max(right, 0), 0, max(bottom, 0)), mode="replicate")
        return Inpaint(1.0 - torch.cat([observed[..., t:t + h, l:l + w] for t, l, h, w in windows]))


class Superres(ForwardOperator):
    """``A`` = antialiased bicubic downsampling by an integer ``scale`` (MATLAB convention)."""

    def __init__(self, scale: int):
        if scale not in (2, 3, 4, 8):
            raise ValueError(f"scale must be 2, 3, 4 or 8, got {scale}")
        self.scale = scale

    def _matrices(self, hr_hw, like):
        lr_hw = (hr_hw[0] // self.scale, hr_hw[1] // self.scale)
        return resize_matrices(hr_hw, lr_hw, device=like.device, dtype=like.dtype)

    def forward(self, x):
        if x.shape[-2] % self.scale or x.shape[-1] % self.scale:
            raise ValueError(f"image sides {tuple(x.shape[-2:])} must be multiples of {self.scale}")
        r_h, r_w = self._matrices(tuple(x.shape[-2:]), x)
        return r_h @ x @ r_w.T

    def adjoint(self, y):
        hr_hw = (y.shape[-2] * self.scale, y.shape[-1] * self.scale)
        r_h, r_w = self._matrices(hr_hw, y)
        return r_h.T @ y @ r_w

    def initial_guess(self, y):
        return imresize(y, (y.shape[-2] * self.scale, y.shape[-1] * self.scale))


#: Beyond about this many pixels from a hole's border the fill stops following the
#: border's slope and flattens (see :func:`fill_holes`). Chosen on crops of the training
#: photographs (a fill learns nothing from them): 2 px gave 23.1 dB inside a centred
#: 64x64 box against 21.9 for the biharmonic fill (infinite length), 0.05 dB less with
#: half the pixels missing.
FILL_LENGTH = 2.0


def fill_holes(y: torch.Tensor, observed: torch.Tensor, *, length: float = FILL_LENGTH) -> torch.Tensor:
    """Fill unobserved pixels smoothly from their surroundings (a tension spline).

    The fill minimises ``|Laplacian(x)|^2 + |grad(x)|^2 / length^2`` over the
    missing pixels, the observed ones fixed: biharmonic (it meets a hole's
    border in value and slope) over a few pixels, harmonic (flat, bounded by
    the border's values) deeper in, where carrying the border's slope across
    a large hole overshoots. No texture, but the low frequencies the encoder
    needs to start from the right code.

    Parameters
    ----------
    y : tensor (N, C, H, W)
        Image values; those at missing pixels are ignored.
    observed : tensor (N or 1, 1, H, W)
        1 where a pixel is observed, 0 where it is missing.
    length : float
        Tension length in pixels (> 0); larger is closer to the biharmonic fill.
    """
    from scipy.sparse.linalg import splu   # deferred: scipy's import is slow

    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    n, c, h, w = y.shape
    # One factorisation per mask: images sharing a mask are solved together, as extra channels.
    masks = observed.shape[0]
    missing = (observed < 0.5).reshape(masks, h * w).cpu().numpy()
    energy = _spline_energy(h, w, float(length))
    per_mask = n // masks
    values = (y.detach().cpu().double().reshape(masks, per_mask, c, h * w)
              .permute(0, 3, 1, 2).reshape(masks, h * w, per_mask * c).numpy().copy())
    for image, hole in zip(values, missing):
        if hole.all():
            image[:] = 0.5         # nothing observed: no better guess than mid-gray
        elif hole.any():
            # Zero gradient of the energy at the missing pixels: Q_mm x_m = -Q_mo x_o.
            rows = energy[hole]
            image[hole] = splu(rows[:, hole].tocsc()).solve(-(rows[:, ~hole] @ image[~hole]))
    filled = (torch.from_numpy(values).reshape(masks, h * w, per_mask, c).permute(0, 2, 3, 1)
              .reshape(n, c, h, w).to(y))
    return torch.where(observed >= 0.5, y, filled)


@lru_cache(maxsize=8)
def _spline_energy(h: int, w: int, length: float):
    """The matrix ``Q = L^2 + L / length^2`` of the tension spline's energy ``x^T Q x`` on an
    ``h x w`` grid, ``L = G^T G`` the graph Laplacian (mirror boundaries)."""
    import scipy.sparse as sp

    def diff(k):
        return sp.diags([-np.ones(k - 1), np.ones(k - 1)], [0, 1], shape=(k - 1, k))
    grad = sp.vstack([sp.kron(sp.identity(h), diff(w)), sp.kron(diff(h), sp.identity(w))])
    lap = (grad.T @ grad).tocsr()
    return (lap @ lap + lap / length**2).tocsr()
