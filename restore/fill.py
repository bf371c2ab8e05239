"""Smooth fills of unobserved pixels: the inpainting first guess and its last step."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch


#: Beyond about this many pixels from a hole's border the fill stops following the
#: border's slope and flattens (see :func:`fill_holes`). Chosen on crops of the training
#: photographs (a fill learns nothing from them): 2 px gave 23.1 dB inside a centred
#: 64x64 box against 21.9 for the biharmonic fill (infinite length), 0.05 dB less with
#: half the pixels missing.
FILL_LENGTH = 2.0
#: The least share of a pixel's window that must be seen for :func:`flat_holes` to judge it.
FLAT_SHARE = 0.125


def fill_holes(y: torch.Tensor, observed: torch.Tensor, *, length: float = FILL_LENGTH,
               unseen: float | None = 0.5) -> torch.Tensor:
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
    unseen : float or None
        The value of an image none of whose pixels is observed (default mid-grey; 0 for the fill
        of an error), or None to keep the values it holds (a tile inside a large hole, given the
        whole image's fill by :func:`coarse_fill`).
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
            if unseen is not None:
                image[:] = unseen      # nothing observed: no better guess
        elif hole.any():
            # Zero gradient of the energy at the missing pixels: Q_mm x_m = -Q_mo x_o.
            rows = energy[hole]
            image[hole] = splu(rows[:, hole].tocsc()).solve(-(rows[:, ~hole] @ image[~hole]))
            # Within the observed values' range: the biharmonic part carries a border's slope on, and
            # beside a sharp edge at a hole's border (a frame's line, a scan's rule) past black or white.
            image[hole] = image[hole].clip(image[~hole].min(0), image[~hole].max(0))
    filled = (torch.from_numpy(values).reshape(masks, h * w, per_mask, c).permute(0, 2, 3, 1)
              .reshape(n, c, h, w).to(y))
    return torch.where(observed >= 0.5, y, filled)


#: The longest side of the grid :func:`coarse_fill` solves on.
COARSE_SIDE = 256


def coarse_fill(y: torch.Tensor, observed: torch.Tensor, *, side: int = COARSE_SIDE) -> torch.Tensor:
    """``y`` (N, C, H, W) with its unobserved pixels filled smoothly from the whole image: the fill
    of :func:`fill_holes` on a grid of at most ``side`` pixels a side (the observed pixels' mean in
    each cell), upscaled. Where a hole is larger than a tile, the tiles inside it see no pixel of
    the image: they start from this rather than from mid-grey (a grey square in a dark photograph)."""
    import math

    import torch.nn.functional as F
    h, w = y.shape[-2:]
    factor = math.ceil(max(h, w) / side)
    if factor <= 1:
        return fill_holes(y, observed)
    pad = (0, -w % factor, 0, -h % factor)
    seen = F.pad((observed >= 0.5).to(y.dtype), pad)
    share = F.avg_pool2d(seen, factor)
    means = F.avg_pool2d(F.pad(y, pad, mode="replicate") * seen, factor) / share.clamp_min(1e-12)
    filled = fill_holes(means, (share > 0).to(y.dtype))
    upscaled = F.interpolate(filled, size=(h + pad[3], w + pad[1]), mode="bilinear", align_corners=False)
    return torch.where(observed >= 0.5, y, upscaled[..., :h, :w])


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


def flat_holes(y: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """The missing pixels amid one colour, ``(N, 1, H, W)`` booleans: where the seen pixels
    within :data:`~restore.fidelity.FLAT_RADIUS` of the pixel, or of the whole hole it is part of
    (a 4-connected run of missing pixels), keep within :data:`~restore.fidelity.FLAT_LEVELS` in
    every channel, and at least :data:`FLAT_SHARE` of the pixel's window (of one of the hole's
    pixels' windows) was seen.

    Where the seen image is one colour the smooth fill (:func:`fill_holes`) is that colour, the
    most plausible image; a prior that does not know the colour (saturated magenta, cyan) fills
    it with its own."""
    from scipy import ndimage

    from .fidelity import FLAT_LEVELS, window_extremes

    missing = (observed < 0.5).expand(len(y), -1, -1, -1)
    high, low, share = window_extremes(y, observed)
    flat = missing & ((high - low <= FLAT_LEVELS / 255).all(1, keepdim=True)) & (share >= FLAT_SHARE)
    # A hole's surroundings are the union of its pixels' windows: their extremes are the
    # extremes of the windows' over the hole.
    high, low = high.detach().float().cpu().numpy(), low.detach().float().cpu().numpy()
    enough = (share >= FLAT_SHARE)[:, 0].cpu().numpy()
    holes = missing[:, 0].cpu().numpy()
    whole = np.zeros(holes.shape, bool)
    for i, hole in enumerate(holes):
        labels, count = ndimage.label(hole)
        if count == 0:
            continue
        index = np.arange(1, count + 1)
        spread = np.stack([np.asarray(ndimage.maximum(h, labels, index)) - np.asarray(ndimage.minimum(l, labels, index))
                           for h, l in zip(high[i], low[i])])
        seen = np.asarray(ndimage.maximum(enough[i], labels, index), bool)
        one_colour = seen & (spread <= FLAT_LEVELS / 255).all(0)
        whole[i] = hole & np.concatenate([[False], one_colour])[labels]
    return flat | torch.from_numpy(whole)[:, None].to(flat.device)
