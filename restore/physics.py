"""Forward models: how a clean image ``x`` becomes what we observe.

A task observes ``y`` from ``A(x)``; what the noise does is the data term's business
(:mod:`restore.fidelity`), never the physics'. :class:`Physics` is any forward model; the
tasks' are :class:`LinearPhysics` modules (per-pixel data are buffers, so ``.to(device)``
moves them once) with

* ``A(x)`` and ``A_adjoint(y)``;
* ``prox_l2(z, y, gamma, weight=None)`` -- ``argmin_x |A(x) - y|_W^2 / 2 + |x - z|^2 / (2 gamma)``,
  ``gamma`` one number or one per pixel: closed form where ``A^T A`` is diagonal or
  diagonalised (Fourier, eigenvectors), conjugate gradients otherwise;
* ``gram_diagonal`` (optional) and ``spread`` for the data term's per-pixel statistics;
* ``clipped(x)`` -- ``x`` brought into [0, 1] with what ``A`` sees of it kept where the range
  leaves room (the solver's last step).

A new degradation is one new subclass. Names follow DeepInverse's ``physics`` module.
Tensors are ``(N, C, H, W)`` floats with pixel values in [0, 1].
"""
from __future__ import annotations

import functools
import math
from abc import ABCMeta, abstractmethod
from numbers import Integral

import numpy as np
import scipy.fft
import torch
from torch import nn
from torch.nn import functional as F

from .resize import resize_matrix


class Physics(nn.Module, metaclass=ABCMeta):
    """A forward model ``x -> A(x)``, linear or not; what the noise does is the data term's
    (:mod:`restore.fidelity`), never the physics'."""

    @abstractmethod
    def A(self, x: torch.Tensor) -> torch.Tensor:
        """``A(x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def clipped(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in [0, 1] (:meth:`LinearPhysics.clipped` keeps what ``A`` sees of it)."""
        return x.clamp(0, 1)

    def beyond(self, x: torch.Tensor) -> torch.Tensor | None:
        """``(N, 1, H, W)``, true at the pixels of ``x`` beyond the observation's own (a blur's
        margin), or None where ``x`` and the observation cover the same ground."""
        return None


class LinearPhysics(Physics):
    """A linear forward operator; subclasses implement ``A`` and ``A_adjoint``."""

    #: Conjugate-gradient iterations of the default :meth:`prox_l2`.
    cg_iterations: int = 25
    #: Projected-gradient steps of :meth:`clipped`.
    clip_iterations: int = 30
    #: Whether ``A`` sees each pixel alone (the identity, a mask): there :meth:`clipped` is the clip.
    pixelwise: bool = False
    #: Whether the data pin down each pixel on its own (``A^T A`` has no eigenvalues near 0 on
    #: the pixels it observes); a blur does not.
    well_posed: bool = True

    @abstractmethod
    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T(y)``."""

    def gram_diagonal(self, x: torch.Tensor) -> torch.Tensor:
        """The diagonal of ``A^T A`` at ``x``'s size: how much each pixel is observed."""
        raise NotImplementedError(f"{type(self).__name__} does not give the diagonal of A^T A")

    def gram_norm(self, x: torch.Tensor) -> float:
        """The largest eigenvalue of ``A^T A`` at ``x``'s size (one image, all its channels): 20
        power iterations from a fixed start, which approach it from below, plus 5 %."""
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        v = torch.randn(x[:1].shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        v = v.to(device=x.device, dtype=dtype)
        for _ in range(20):
            w = self.A_adjoint(self.A(v))
            norm = w.norm()
            v = w / norm.clamp_min(1e-12)
        return 1.05 * float(norm)

    def clipped(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in [0, 1], seen by ``A`` as ``x`` is, as far as the range allows.

        Clipping alone changes what the data see: where a restoration overshoots white in one
        pixel of a downsampled cell, the clip takes the excess out of the cell's mean, which the
        observation had fixed (flat saturated magenta, upscaled x2: the restoration's
        downsampled image 4 levels from the observation before the clip, 19 after). Projected
        gradient on ``|A(v) - A(x)|^2 / 2`` over [0, 1] from the clipped ``x`` (accelerated:
        FISTA, Beck & Teboulle 2009; in float32 at least) hands the excess to the pixels beside
        it that have room: exactly for a downsampled cell's mean, mostly for a blur, whose
        ``A^T A`` has eigenvalues near 0. Where ``A`` sees each pixel alone (denoising,
        inpainting) the clip is all there is.
        """
        out = x.clamp(0, 1)
        if self.pixelwise or torch.equal(out, x):
            return out
        norm = self.gram_norm(x)
        if not norm > 0:                    # A sees nothing of x: nothing to keep
            return out
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        target, step, out = self.A(work), 1 / norm, out.to(work.dtype)
        previous, t = out, 1.0
        for _ in range(self.clip_iterations):
            t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
            v = out + ((t - 1) / t_next) * (out - previous)
            previous, t = out, t_next
            out = (v - step * self.A_adjoint(self.A(v) - target)).clamp(0, 1)
        return out.to(x.dtype)

    def spread(self, v: torch.Tensor) -> torch.Tensor:
        """A non-negative map over the observation's pixels carried onto the image's (see
        :meth:`spread_signed`), never below 0."""
        return self.spread_signed(v).clamp_min(0)

    def spread_signed(self, v: torch.Tensor) -> torch.Tensor:
        """A map over the observation's pixels carried onto the image's: at each pixel the mean of
        ``v`` over the observations that see it, weighted as ``A`` weighs them (0 where none does)."""
        weight = self.A_adjoint(torch.ones_like(v))
        seen = weight > 1e-6
        return torch.where(seen, self.A_adjoint(v) / torch.where(seen, weight, torch.ones_like(weight)), 0)

    def prox_l2(self, z: torch.Tensor, y: torch.Tensor, gamma: float | torch.Tensor, *,
                x0: torch.Tensor | None = None, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``argmin_x |A(x) - y|_W^2 / 2 + |x - z|^2 / (2 gamma)``.

        ``gamma`` is one number or one per pixel of ``x``; ``weight`` (``W``, default 1) one per
        observed pixel, such as the inverse of a per-pixel noise variance. Solves
        ``(A^T W A + 1/gamma) x = A^T W y + z / gamma`` by conjugate gradients, warm-started at
        ``x0`` (or ``z``), batched over N.
        """
        inv = 1.0 / gamma
        w = 1.0 if weight is None else weight
        return conjugate_gradient(lambda v: self.A_adjoint(w * self.A(v)) + inv * v,
                                  self.A_adjoint(w * y) + inv * z, z if x0 is None else x0,
                                  iterations=self.cg_iterations)


def conjugate_gradient(matvec, rhs: torch.Tensor, x0: torch.Tensor, *, iterations: int,
                       precondition=None) -> torch.Tensor:
    """Solve ``matvec(x) = rhs`` (symmetric positive definite) per sample of the batch, optionally
    preconditioned by ``precondition(r)`` (an approximate inverse of ``matvec``, also SPD).

    A fixed number of iterations and no convergence test: a test would wait for
    the device at every step.
    """
    x = x0.clone()
    r = rhs - matvec(x)
    s = r if precondition is None else precondition(r)
    p = s.clone()
    rs = _dot(r, s)
    for _ in range(iterations):
        ap = matvec(p)
        alpha = rs / _dot(p, ap).clamp_min(1e-20)
        x = x + alpha * p
        r = r - alpha * ap
        s = r if precondition is None else precondition(r)
        rs_new = _dot(r, s)
        p = s + (rs_new / rs.clamp_min(1e-20)) * p
        rs = rs_new
    return x


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product, shaped to broadcast over (N, C, H, W)."""
    return (a * b).flatten(1).sum(1).view(-1, 1, 1, 1)


class Denoising(LinearPhysics):
    """``A = I``."""

    pixelwise = True

    def A(self, x):
        return x

    def A_adjoint(self, y):
        return y

    def prox_l2(self, z, y, gamma, *, x0=None, weight=None):
        # w (x - y) + (x - z) / gamma = 0
        gw = gamma if weight is None else gamma * weight
        return (gw * y + z) / (gw + 1)

    def gram_diagonal(self, x):
        return torch.ones_like(x[:, :1])


class Inpainting(LinearPhysics):
    """``A = diag(m)``: only the pixels where ``m = 1`` are observed.

    Parameters
    ----------
    missing : tensor of shape (N or 1, 1, H, W)
        1 (or True) where a pixel is missing.
    """

    pixelwise = True

    def __init__(self, missing: torch.Tensor):
        super().__init__()
        if not torch.is_tensor(missing):
            raise TypeError(f"missing must be a tensor (N or 1, 1, H, W), 1 where a pixel is missing, got "
                            f"{type(missing).__name__}; torch.as_tensor(mask)[None, None] makes one of an (H, W) array")
        if missing.dim() != 4 or missing.shape[1] != 1:
            raise ValueError(f"missing must have shape (N, 1, H, W), got {tuple(missing.shape)}")
        if not bool(((missing == 0) | (missing == 1)).all()):
            raise ValueError("missing must hold 0 (observed) or 1 (missing) at every pixel; a pixel is seen or not "
                             "(mask > 0.5 makes it so)")
        self.register_buffer("observed", 1.0 - missing.float())

    def A(self, x):
        return x * self.observed

    def A_adjoint(self, y):
        return y * self.observed

    def prox_l2(self, z, y, gamma, *, x0=None, weight=None):
        gw = gamma if weight is None else gamma * weight
        blend = (gw * y + z) / (gw + 1)
        return self.observed * blend + (1 - self.observed) * z

    def gram_diagonal(self, x):
        return self.observed.to(x.dtype).expand(x.shape[0], 1, -1, -1)


class Downsampling(LinearPhysics):
    """``A`` = antialiased bicubic downsampling by an integer ``scale`` (MATLAB ``imresize``).

    Written as two matrices, ``A(x) = R_h x R_w^T``, which gives the exact adjoint.

    Parameters
    ----------
    shape : (H, W)
        Size of the high-resolution image; both sides multiples of ``scale``.
    scale : int
        2, 3, 4 or 8.
    """

    SCALES = (2, 3, 4, 8)

    def __init__(self, shape: tuple[int, int], scale: int):
        super().__init__()
        if scale not in self.SCALES:
            raise ValueError(f"scale must be 2, 3, 4 or 8, got {scale}")
        if not (isinstance(shape, (tuple, list, torch.Size)) and len(shape) == 2
                and all(isinstance(n, Integral) and not isinstance(n, bool) and n > 0 for n in shape)):
            raise ValueError(f"shape must be the high-resolution image's (H, W), got {shape!r}")
        h, w = shape
        if h % scale or w % scale:
            raise ValueError(f"image sides {(h, w)} must be multiples of {scale}")
        self.scale, self.shape = scale, (h, w)
        self.register_buffer("r_h", torch.as_tensor(resize_matrix(h, h // scale), dtype=torch.float32))
        self.register_buffer("r_w", torch.as_tensor(resize_matrix(w, w // scale), dtype=torch.float32))

    def A(self, x):
        if tuple(x.shape[-2:]) != self.shape:
            raise ValueError(f"this operator takes {self.shape} images, got {tuple(x.shape[-2:])}")
        return self.r_h.to(x.dtype) @ x @ self.r_w.to(x.dtype).T

    def A_adjoint(self, y):
        return self.r_h.to(y.dtype).T @ y @ self.r_w.to(y.dtype)

    def gram_diagonal(self, x):
        d_h = (self.r_h**2).sum(0).to(x.dtype)
        d_w = (self.r_w**2).sum(0).to(x.dtype)
        return (d_h[:, None] * d_w[None, :]).expand(x.shape[0], 1, -1, -1)

    def gram_norm(self, x):
        # A^T A is the Kronecker product of the sides' R^T R: its eigenvalues are their products.
        return float(_gram_eigen(self.shape[0], self.scale)[0].max() * _gram_eigen(self.shape[1], self.scale)[0].max())

    def prox_l2(self, z, y, gamma, *, x0=None, weight=None):
        """Closed form for one ``gamma``: ``x = U_h [(U_h^T b U_w) / (a_h a_w^T + 1/gamma)] U_w^T``.

        ``U, a`` are the eigenvectors and eigenvalues of ``R^T R`` on each side and
        ``b = A^T y + z / gamma``; a per-pixel ``gamma`` or ``weight`` takes conjugate gradients.
        """
        if (torch.is_tensor(gamma) and gamma.numel() > 1) or weight is not None:
            return super().prox_l2(z, y, gamma, x0=x0, weight=weight)
        inv = 1.0 / float(gamma)
        # A^T A = (R_h^T R_h) kron (R_w^T R_w): with each factor's eigenvectors (computed once per
        # size, when first needed) the prox is a few small matrix products instead of dozens of
        # conjugate-gradient iterations.
        (a_h, u_h), (a_w, u_w) = (_gram_eigen_on(n, self.scale, z.device, z.dtype) for n in self.shape)
        rhs = u_h.T @ (self.A_adjoint(y) + inv * z) @ u_w
        return u_h @ (rhs / (a_h[:, None] * a_w[None, :] + inv)) @ u_w.T


@functools.lru_cache(maxsize=32)
def _gram_eigen(n: int, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues and eigenvectors of ``R^T R`` for the ``n -> n / scale`` resize matrix ``R``."""
    r = resize_matrix(n, n // scale)
    values, vectors = np.linalg.eigh(r.T @ r)
    return (torch.as_tensor(values.clip(min=0), dtype=torch.float32),
            torch.as_tensor(vectors, dtype=torch.float32))


@functools.lru_cache(maxsize=32)
def _gram_eigen_on(n: int, scale: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_gram_eigen` on ``device`` in ``dtype``, copied there once (not at every x-step)."""
    return tuple(t.to(device=device, dtype=dtype) for t in _gram_eigen(n, scale))


def fast_length(n: int) -> int:
    """The smallest length of at least ``n`` whose FFT is fast (no prime factor above 5): a
    tile of 268 = 4 x 67 pixels transforms in three times the time of 270."""
    return scipy.fft.next_fast_len(n, real=True)


class Blur(LinearPhysics):
    """``A`` = convolution with a kernel, ``valid`` mode: ``x`` has ``margin`` more pixels on every side than ``y``.

    An image blurred with reflected borders is ``A(reflect_pad(x))``
    (:meth:`blur_image`); restoring it over the larger support keeps ``A``
    exact at every border, the image's and a tile's alike.

    Parameters
    ----------
    kernel : tensor (kh, kw)
        Non-negative, odd sides, summing to 1.
    margin : int, optional
        Border of ``x`` beyond ``y``; at least the kernel's radius (the default).
    """

    def __init__(self, kernel: torch.Tensor, *, margin: int | None = None):
        super().__init__()
        if isinstance(kernel, str):
            raise TypeError(f"kernel must be an array of weights, got the text {kernel!r}; gaussian_kernel(std) "
                            "and motion_kernel(length, angle) make them (restore.deblur takes the text)")
        kernel = torch.as_tensor(kernel, dtype=torch.float32)
        if not bool(torch.isfinite(kernel).all()):
            raise ValueError("kernel has NaN or infinite weights")
        if kernel.dim() != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise ValueError(f"kernel must be 2-D with odd sides, got shape {tuple(kernel.shape)}")
        if bool((kernel < 0).any()) or abs(float(kernel.sum()) - 1) > 1e-3:
            raise ValueError(f"kernel weights must be 0 or more and sum to 1, got a sum of {float(kernel.sum()):.4g} "
                             f"and a least weight of {float(kernel.min()):.4g}; divide a kernel by its sum")
        self.radius = (kernel.shape[0] // 2, kernel.shape[1] // 2)
        self.margin = max(self.radius) if margin is None else margin
        if self.margin < max(self.radius):
            raise ValueError(f"margin {self.margin} is smaller than the kernel's radius {max(self.radius)}")
        # conv2d correlates: flip the kernel so that A is a true convolution.
        self.register_buffer("weight", kernel.flip(0, 1)[None, None].contiguous())

    def _fourier(self, x: torch.Tensor, *, adjoint: bool) -> torch.Tensor:
        """``x`` circularly convolved with the kernel (correlated, for the adjoint) over ``x``'s
        support zero-padded to FFT-friendly sides; the caller crops what the padding leaves exact.

        Through FFTs rather than ``conv2d``: ``A^T A`` over 8 tiles of 268x268 took 19 ms against
        42 ms with a 13x13 kernel (Gaussian 2), 26 against 85 ms with a 17x17 one (motion 15).
        """
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()    # no bf16 FFTs
        size = tuple(fast_length(n) for n in x.shape[-2:])
        transfer = self.transfer(size, x.device, work.dtype)
        spectrum = torch.fft.rfft2(work, s=size) * (transfer.conj() if adjoint else transfer)
        return torch.fft.irfft2(spectrum, s=size).to(x.dtype)

    def A(self, x):
        # Outputs at least the kernel's radius inside x's support never wrap round.
        m, (h, w) = self.margin, x.shape[-2:]
        return self._fourier(x, adjoint=False)[..., m:h - m, m:w - m]

    def A_adjoint(self, y):
        m, (h, w) = self.margin, y.shape[-2:]
        return self._fourier(F.pad(y, (m, m, m, m)), adjoint=True)[..., :h + 2 * m, :w + 2 * m]

    def beyond(self, x):
        m = self.margin
        outside = torch.ones(x.shape[0], 1, *x.shape[-2:], dtype=torch.bool, device=x.device)
        outside[..., m:x.shape[-2] - m, m:x.shape[-1] - m] = False
        return outside

    def gram_diagonal(self, x):
        eh, ew = self.margin - self.radius[0], self.margin - self.radius[1]
        ones = torch.ones(x.shape[0], 1, x.shape[-2] - 2 * self.margin, x.shape[-1] - 2 * self.margin,
                          dtype=x.dtype, device=x.device)
        return F.conv_transpose2d(F.pad(ones, (ew, ew, eh, eh)), self.weight.to(x.dtype) ** 2)

    def prox_l2(self, z, y, gamma, *, x0=None, weight=None):
        """Conjugate gradients in the Fourier domain, preconditioned by the circular blur's exact solution.

        ``x``'s support is zero-padded to FFT-friendly sides ``L``; there ``A = M K`` with ``K`` the
        circular convolution and ``M`` the window of observed pixels (the padding's pixels see no
        observation, so their block of the system is ``I / gamma``, apart from ``x``'s). ``A^T A``
        differs from ``K^T K`` (diagonal in the Fourier domain) only by the border ring ``M``
        drops, so with ``(|K|^2 + 1/gamma)^-1`` as preconditioner a few iterations suffice. Kept
        as half spectra, each iteration costs one pair of FFTs: the preconditioner is a division.
        A per-pixel ``gamma`` or ``weight`` takes plain conjugate gradients.
        """
        if weight is not None or (torch.is_tensor(gamma) and gamma.numel() > 1):
            # A per-pixel scale (the last x-step) or weight: a Fourier preconditioner of their means
            # converges slowly where they span decades, so plain conjugate gradients take it.
            return super().prox_l2(z, y, gamma, x0=x0, weight=weight)
        inv = 1.0 / gamma
        m, (h, w) = self.margin, z.shape[-2:]
        size = tuple(fast_length(n) for n in (h, w))
        transfer = self.transfer(size, z.device, z.dtype)
        window = torch.zeros(size, device=z.device, dtype=z.dtype)
        window[m:h - m, m:w - m] = 1
        # Real signals' half spectra: Parseval's inner product counts the mirrored columns twice.
        twice = torch.full((size[0], size[1] // 2 + 1), 2.0, device=z.device, dtype=z.dtype)
        twice[:, 0] = 1
        if size[1] % 2 == 0:
            twice[:, -1] = 1

        def spectrum(v):
            return torch.fft.rfft2(v, s=size)

        def gram(v_hat):
            blurred = torch.fft.irfft2(transfer * v_hat, s=size) * window
            return transfer.conj() * spectrum(blurred) + inv * v_hat

        def dot(a, b):
            return (twice * (a.conj() * b).real).flatten(1).sum(1).view(-1, 1, 1, 1)

        y_support = torch.zeros(*z.shape[:2], *size, device=z.device, dtype=z.dtype)
        y_support[..., m:h - m, m:w - m] = y
        x_hat = spectrum(z if x0 is None else x0)
        r = transfer.conj() * spectrum(y_support) + inv * spectrum(z) - gram(x_hat)
        diagonal = transfer.abs() ** 2 + inv
        s = r / diagonal
        p, rs = s, dot(r, s)
        for _ in range(self.pcg_iterations):
            ap = gram(p)
            alpha = rs / dot(p, ap).clamp_min(1e-30)
            x_hat = x_hat + alpha * p
            r = r - alpha * ap
            s = r / diagonal
            rs_new = dot(r, s)
            p = s + (rs_new / rs.clamp_min(1e-30)) * p
            rs = rs_new
        return torch.fft.irfft2(x_hat, s=size)[..., :h, :w]

    #: Preconditioned conjugate-gradient iterations of :meth:`prox_l2`.
    pcg_iterations: int = 8
    well_posed = False

    def transfer(self, size, device, dtype) -> torch.Tensor:
        """The kernel's Fourier transform over a support of ``size`` (its centre at the origin)."""
        key = (tuple(size), device, dtype)
        cache = self.__dict__.setdefault("_transfers", {})
        if key not in cache:
            kernel = self.weight[0, 0].flip(0, 1).to(device=device, dtype=dtype)
            padded = torch.zeros(*size, device=device, dtype=dtype)
            padded[:kernel.shape[0], :kernel.shape[1]] = kernel
            cache[key] = torch.fft.rfft2(padded.roll((-self.radius[0], -self.radius[1]), dims=(0, 1)))
        return cache[key]

    def gram_norm(self, x):
        return 1.0          # non-negative weights summing to 1: no frequency gains more than 1

    @property
    def width(self) -> float:
        """The kernel's spread in pixels: the root of its variance about its centroid, averaged over
        the two axes (a Gaussian's standard deviation)."""
        kernel = self.weight[0, 0].double()
        rows, columns = (torch.arange(n, dtype=torch.float64, device=kernel.device) for n in kernel.shape)
        variances = [(kernel.sum(axis) * (at - (kernel.sum(axis) * at).sum()) ** 2).sum()
                     for axis, at in ((1, rows), (0, columns))]
        return float(((variances[0] + variances[1]) / 2).sqrt())

    def blur_image(self, x: torch.Tensor) -> torch.Tensor:
        """The same-size blur of a whole image, its borders reflected."""
        m = self.margin
        return self.A(F.pad(x, (m, m, m, m), mode="reflect"))


class GaussianNoise(nn.Module):
    """``n ~ N(0, sigma^2 I)``, ``sigma`` in [0, 1] units."""

    def __init__(self, sigma: float):
        super().__init__()
        if sigma < 0:
            raise ValueError(f"sigma must be 0 or more, got {sigma}")
        self.sigma = sigma

    def forward(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.sigma == 0:
            return y
        return y + self.sigma * torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)


def gaussian_kernel(std: float, *, max_side: int | None = None) -> torch.Tensor:
    """A normalised isotropic Gaussian kernel of standard deviation ``std`` pixels (radius ``3 std``);
    a ``ValueError`` where its side would pass ``max_side``."""
    if not 0 < std < math.inf:
        raise ValueError(f"the Gaussian's standard deviation must be a positive number, got {std}")
    radius = max(1, math.ceil(3 * std))
    _check_side(radius, max_side)
    u = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-u**2 / (2 * std**2))
    kernel = g[:, None] * g[None, :]
    return (kernel / kernel.sum()).float()


def motion_kernel(length: float, angle: float, *, max_side: int | None = None) -> torch.Tensor:
    """A normalised straight motion-blur kernel: a line of ``length`` pixels at ``angle`` degrees
    (anticlockwise); a ``ValueError`` where its side would pass ``max_side``."""
    if not 1 <= length < math.inf or not math.isfinite(angle):
        raise ValueError(f"the motion length must be a number of at least 1 pixel and the angle a number, "
                         f"got {length}, {angle}")
    radius = max(1, math.ceil(length / 2))
    _check_side(radius, max_side)
    u = torch.arange(-radius, radius + 1, dtype=torch.float64)
    dx, dy = math.cos(math.radians(angle)), -math.sin(math.radians(angle))
    # Each pixel's weight: its distance to the segment, as a 1-pixel-wide antialiased line.
    t = (u[None, :] * dx + u[:, None] * dy).clamp(-length / 2, length / 2)
    dist = torch.hypot(u[None, :] - t * dx, u[:, None] - t * dy)
    kernel = (1 - dist).clamp_min(0)
    return (kernel / kernel.sum()).float()


def _check_side(radius: int, max_side: int | None) -> None:
    if max_side is not None and 2 * radius + 1 > max_side:
        raise ValueError(f"its side of {2 * radius + 1} pixels is over the limit of {max_side}; give a smaller kernel")


def wiener(y: torch.Tensor, kernel: torch.Tensor, *, sigma: float) -> torch.Tensor:
    """Wiener deconvolution of ``y`` (N, C, H, W) blurred by ``kernel``.

    ``X = conj(K) Y / (|K|^2 + lam |L|^2)`` in the Fourier domain, ``L`` the discrete
    Laplacian: a noise of level ``sigma`` (in [0, 1] units) against an image
    spectrum falling as 1 / frequency^2, with ``lam`` set by :data:`WIENER_WEIGHT`.

    The transform's borders are periodic. A kernel symmetric under both flips (a Gaussian, a
    horizontal or vertical motion) blurs the image mirrored to twice its size as it blurs the
    image, and the mirrored borders meet without a jump. Any other kernel (a diagonal motion)
    would blur the mirrored copies by its own mirror image, which the filter then undoes wrongly
    everywhere; there the image is padded by :data:`TAPER_SIDES` times the kernel's side, and the
    padding blended into its own circular blur (an edge taper), so that the borders that meet
    are blurred alike. On 12 held-out crops of 128px with noise 1, the first guess against the
    blurred crops' 23.60 / 23.29 / 24.37 dB under a 15-px motion at 30 / 60 / 120 degrees: 21.97 /
    22.42 / 20.57 mirrored, 26.59 / 26.50 / 26.18 tapered; at 0 degrees, mirrored 29.18, tapered 27.64.
    """
    h, w = y.shape[-2:]
    kernel = kernel.to(y)
    if torch.allclose(kernel, kernel.flip(0), atol=1e-6) and torch.allclose(kernel, kernel.flip(1), atol=1e-6):
        pad = 0
        y = torch.cat([y, y.flip(-2)], dim=-2)
        y = torch.cat([y, y.flip(-1)], dim=-1)
    else:
        pad = TAPER_SIDES * max(kernel.shape)
        y = torch.nn.functional.pad(y, (pad, pad, pad, pad), mode="replicate")
    k_hat = kernel_transfer(kernel, y.shape[-2:])
    if pad:
        blurred = torch.fft.irfft2(torch.fft.rfft2(y) * k_hat, s=y.shape[-2:])
        inside = _ramp(y.shape[-2], pad).to(y)[:, None] * _ramp(y.shape[-1], pad).to(y)[None, :]
        y = inside * y + (1 - inside) * blurred
    x_hat = smooth_inverse(k_hat, y.shape[-2:], WIENER_WEIGHT * max(sigma, 1 / 255) ** 2) * torch.fft.rfft2(y)
    return torch.fft.irfft2(x_hat, s=y.shape[-2:])[..., pad:pad + h, pad:pad + w]


#: The discrete Laplacian, whose transfer function weighs a Wiener filter's smoothness term.
LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def smooth_inverse(transfer: torch.Tensor, shape, weight) -> torch.Tensor:
    """The gain ``conj(K) / (|K|^2 + weight |L|^2)`` of a blur's transfer function ``K`` over an
    image of ``shape`` (its ``rfft2``, as :func:`kernel_transfer` gives it): its inverse regularised
    by the smoothness ``|L|^2`` of the discrete Laplacian ``L``, at ``weight`` (the noise's variance
    over the image's power, a spectrum taken to fall as ``1 / |L|^2``)."""
    rough = kernel_transfer(LAPLACIAN.to(transfer.real), shape).abs().square()
    return transfer.conj() / (transfer.abs().square() + weight * rough)


def kernel_transfer(kernel: torch.Tensor, shape) -> torch.Tensor:
    """The Fourier transform (``rfft2``) of ``kernel`` centred at the origin of an image of ``shape``."""
    padded = kernel.new_zeros(tuple(shape))
    padded[:kernel.shape[0], :kernel.shape[1]] = kernel
    return torch.fft.rfft2(padded.roll((-(kernel.shape[0] // 2), -(kernel.shape[1] // 2)), dims=(0, 1)))


def _ramp(n: int, pad: int) -> torch.Tensor:
    """A raised cosine from 0 at both ends of ``n`` samples to 1 at ``pad`` from them."""
    i = torch.arange(n, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(torch.pi * torch.minimum(i, n - 1 - i).clamp(max=pad) / pad)).float()


#: The padding of :func:`wiener`'s edge taper, in kernel sides (2 / 4 on the held-out crops: 26.43 /
#: 26.59 dB at 30 degrees, 26.23 / 26.18 at 120).
TAPER_SIDES = 4


#: Weight of the Wiener filter's smoothness term per unit of noise variance. Chosen on 12 crops of
#: 128x128 of the held-out photographs at 640 px with noise 2.55 (not the benchmark): 1000 gave
#: 29.4 dB under a Gaussian blur of 2 px (blurred input 26.7; 100: 28.8, 10000: 28.7) and 25.2
#: under a 15-px motion blur (input 24.0; 100: 20.7, 10000: 26.5).
WIENER_WEIGHT = 1000.0
