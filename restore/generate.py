"""What a VAE gives beyond restoration: samples from the prior and walks through its latent space."""
from __future__ import annotations

import numpy as np
import torch

from .data import to_channels
from .model import VAE


@torch.no_grad()
def sample(vae: VAE, n: int, *, size: int | None = None, temperature: float = 1.0,
           seed: int = 0) -> np.ndarray:
    """``n`` images ``D(z)``, ``z ~ N(0, temperature^2 I)``, as ``(n, H, W, C)`` floats in [0, 1].

    ``size`` is the side of each image (default the prior's tile size; the
    digits prior always draws 28x28).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    side = vae.tile_size if size is None else size
    if side % vae.size_multiple:
        raise ValueError(f"size must be a multiple of {vae.size_multiple}, got {side}")
    device = next(vae.parameters()).device
    g = torch.Generator().manual_seed(seed)
    z = temperature * torch.randn((n, *vae.latent_shape(side, side)), generator=g)
    return _to_numpy(vae.decode(z.to(device)))


@torch.no_grad()
def interpolate(vae: VAE, start: np.ndarray, end: np.ndarray, frames: int = 8) -> np.ndarray:
    """Decode ``frames`` codes on the line between the encoder means of two images.

    ``start`` and ``end`` are ``(H, W, C)`` floats in [0, 1] of one size, which the
    prior must accept (28x28 for digits, multiples of 4 for photos).
    """
    if start.shape[:2] != end.shape[:2]:
        raise ValueError(f"the two images differ in size: {start.shape[:2]} and {end.shape[:2]}")
    if frames < 2:
        raise ValueError(f"frames must be at least 2, got {frames}")
    device = next(vae.parameters()).device
    pair = np.stack([to_channels(start, vae.channels), to_channels(end, vae.channels)])
    mu, _ = vae.encode(torch.from_numpy(pair).permute(0, 3, 1, 2).to(device))
    t = torch.linspace(0, 1, frames, device=device).view(-1, *([1] * (mu.dim() - 1)))
    return _to_numpy(vae.decode((1 - t) * mu[:1] + t * mu[1:]))


def grid(images: np.ndarray, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Tile ``(n, H, W, C)`` images into one ``(rows*H, columns*W, C)`` image with white gaps."""
    n, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    out = np.ones((rows * (h + gap) - gap, columns * (w + gap) - gap, c), np.float32)
    for i, im in enumerate(images):
        r, k = divmod(i, columns)
        out[r * (h + gap): r * (h + gap) + h, k * (w + gap): k * (w + gap) + w] = im
    return out


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
