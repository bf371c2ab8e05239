"""The restoration tasks as functions over arrays: ``denoise``, ``inpaint``, ``superres``.

Each builds its forward operator and hands it to the one shared pipeline:
convert the image to the prior's channels, cut it into tiles, run the latent
solver on each, blend the tiles, convert back. Images are numpy arrays of shape
``(H, W)`` or ``(H, W, C)`` (uint8, uint16, or floats in [0, 1]) or torch
tensors ``(C, H, W)`` / ``(N, C, H, W)`` with values in [0, 1]; the result has
the input's type (and dtype, for arrays). Noise levels are in 0..255 units
whatever the dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .data import to_channels
from .defaults import CLEAN_SIGMA, TASK_DEFAULTS
from .model import VAE
from .operators import Denoise, ForwardOperator, Inpaint, Superres
from .priors import load_prior
from .solver import solve
from .tiling import run_tiled

@dataclass
class SolverOptions:
    """How hard and how to search; shared by every task."""
    prior: str | VAE = "photo"     # "photo", "digits", a checkpoint path, or a loaded model
    steps: int = 30                # 0: encoder only (fast)
    lr: float = 0.05
    mode: str = "joint"            # "joint" (JPMAP) or "latent" (CSGM)
    gamma: float | None = None     # decoder std; default the prior's learned one
    prior_weight: float = 1.0      # lambda in lambda |z|^2 / 2
    anchor: str = "prior"          # centre of the latent term: "prior" N(0, I) or "encoder" q(z | first guess)
    device: str | torch.device = "cpu"
    tile: int | None = None        # tile size in output pixels; default the prior's
    overlap: int = 32
    tile_batch: int = 4            # tiles per solver call
    seed: int = 0
    progress: Callable[[int, int], None] | None = None   # progress(done, total) in solver iterations


def denoise(image, *, sigma: float | None = None, **options):
    """Remove additive white Gaussian noise.

    Parameters
    ----------
    image : array or tensor
        The noisy image.
    sigma : float, optional
        Noise standard deviation in 0..255 units; estimated when omitted.
    **options
        Fields of :class:`SolverOptions` (``prior``, ``steps``, ``device``, ...);
        unset ones take the task's defaults (:data:`TASK_DEFAULTS`).
    """
    if sigma is None:
        sigma = estimate_noise(image)
    return _restore(image, Denoise(), sigma=sigma, options=_options("denoise", options))


def inpaint(image, mask, *, sigma: float = CLEAN_SIGMA, **options):
    """Fill the pixels where ``mask`` is non-zero.

    Parameters
    ----------
    image : array or tensor
        The image; values under the mask are ignored.
    mask : array or tensor of shape (H, W)
        Non-zero (True, white) where pixels are missing.
    sigma : float
        Noise of the known pixels in 0..255 units.
    """
    mask = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
    mask = mask.squeeze()
    size = _spatial_size(image)
    if tuple(mask.shape) != size:
        raise ValueError(f"mask of size {tuple(mask.shape)} does not match image of size {size}")
    missing = (mask != 0).float()[None, None]
    return _restore(image, Inpaint(missing), sigma=sigma, options=_options("inpaint", options))


def superres(image, scale: int, *, sigma: float = CLEAN_SIGMA, **options):
    """Upscale by ``scale`` (2, 3, 4 or 8), inverting antialiased bicubic downsampling."""
    return _restore(image, Superres(int(scale)), sigma=sigma, options=_options("superres", options))


def _options(task: str, given: dict) -> SolverOptions:
    """The task's defaults, overridden by what the caller gave (``None`` means default)."""
    return SolverOptions(**{**TASK_DEFAULTS[task], **{k: v for k, v in given.items() if v is not None}})


def estimate_noise(image) -> float:
    """Gaussian noise standard deviation of ``image`` in 0..255 units.

    Donoho's robust wavelet estimate: the median absolute value of the finest
    diagonal Haar coefficients, divided by 0.6745, averaged over channels.
    Image structure barely reaches those coefficients; white noise fills them.
    """
    pixels, _ = _to_pixels(image)
    h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
    if h == 0 or w == 0:
        raise ValueError(f"image of size {pixels.shape[:2]} is too small to estimate its noise")
    p = pixels[:h, :w].astype(np.float64)
    diagonal = (p[0::2, 0::2] - p[0::2, 1::2] - p[1::2, 0::2] + p[1::2, 1::2]) / 2
    return float(np.mean(np.median(np.abs(diagonal), axis=(0, 1)) / 0.6745)) * 255.0


def _spatial_size(image) -> tuple[int, int]:
    if torch.is_tensor(image):
        return tuple(image.shape[-2:])
    return tuple(np.asarray(image).shape[:2])


def _to_pixels(image) -> tuple[np.ndarray, Callable[[np.ndarray], object]]:
    """``(H, W, C)`` float32 pixels in [0, 1], and the function that converts back."""
    if torch.is_tensor(image):
        t = image.detach()
        if t.dim() == 4:
            if t.shape[0] != 1:
                raise ValueError(f"give one image at a time, got a batch of {t.shape[0]}")
            t = t[0]
        if t.dim() != 3:
            raise ValueError(f"tensor images are (C, H, W) or (1, C, H, W), got shape {tuple(image.shape)}")
        pixels = t.permute(1, 2, 0).float().cpu().numpy()
        back = lambda p: torch.from_numpy(p).permute(2, 0, 1).reshape(*image.shape[:-2], p.shape[0], p.shape[1]).to(image)
        return np.clip(pixels, 0, 1), back
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)):
        raise ValueError(f"images are (H, W), (H, W, 1) or (H, W, 3) arrays, got shape {array.shape}")
    if array.dtype.kind in "ui":
        top = np.iinfo(array.dtype).max
        pixels = array.astype(np.float32) / top
        back = lambda p: np.round(p * top).astype(array.dtype).reshape(p.shape[0], p.shape[1], *array.shape[2:])
    else:
        pixels = array.astype(np.float32)
        back = lambda p: p.astype(np.float32).reshape(p.shape[0], p.shape[1], *array.shape[2:])
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    return np.clip(pixels, 0, 1), back


def _restore(image, operator: ForwardOperator, *, sigma: float, options: SolverOptions):
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    pixels, back = _to_pixels(image)
    device = torch.device(options.device)
    vae = options.prior.to(device) if isinstance(options.prior, torch.nn.Module) else load_prior(options.prior, device)
    channels = pixels.shape[2]
    y = torch.from_numpy(to_channels(pixels, vae.channels)).permute(2, 0, 1)[None].to(device)
    operator = operator.to(device)
    tile = options.tile or vae.tile_size
    torch.manual_seed(options.seed)
    state = {"done": 0, "total": 0}

    def count_tiles(n):
        state["total"] = -(-n // options.tile_batch) * max(options.steps, 1)

    def restore_tiles(tiles, windows):
        def tick(_it, _objective):
            state["done"] += 1
            if options.progress:
                options.progress(state["done"], state["total"])
        result = solve(tiles, operator.crop(windows), vae, sigma=sigma / 255.0, steps=options.steps,
                       lr=options.lr, mode=options.mode, gamma=options.gamma,
                       prior_weight=options.prior_weight, anchor=options.anchor, callback=tick)
        if options.steps == 0:
            tick(0, 0.0)
        return result.x

    x = run_tiled(y, restore_tiles, tile=tile, overlap=options.overlap, multiple=vae.size_multiple,
                  scale=operator.scale, batch=options.tile_batch, on_tiles=count_tiles)
    out = to_channels(x[0].permute(1, 2, 0).cpu().numpy(), channels)
    return back(np.clip(out, 0, 1))
