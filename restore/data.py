"""Training data: random crops of clean photographs, and the damage the encoder learns to see through."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from .images import ImageError, is_image_file, read_image
from .operators import Inpaint, Superres


def find_images(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    folder = Path(folder)
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.is_file() and is_image_file(p))


#: Luma weights (ITU-R BT.601), for gray from colour.
LUMA = (0.299, 0.587, 0.114)


def to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """Convert (H, W, C) pixels to 1 (luma) or 3 (replicated gray) channels."""
    if pixels.shape[2] == channels:
        return pixels
    if channels == 1:
        return (pixels @ np.array(LUMA, dtype=np.float32))[:, :, None]
    return np.repeat(pixels, channels, axis=2)


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """Luma (N, 1, H, W) of colour images (N, 3, H, W), as :func:`to_channels` computes it."""
    return (x * torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)


class CropSampler:
    """Random ``crop x crop`` patches from a set of images, at several scales, flipped at random.

    Each image is held in memory at every scale of ``scales`` (relative to the
    image capped to ``max_side``) at which it still fits a crop.
    """

    def __init__(self, files: list[Path], *, channels: int, crop: int, scales=(1.0, 0.5),
                 flips: bool = True, max_side: int = 1024, seed: int = 0):
        self.crop, self.flips = crop, flips
        self.rng = np.random.default_rng(seed)
        self.images: list[np.ndarray] = []
        for path in files:
            try:
                pixels = to_channels(read_image(path).pixels, channels)
            except ImageError:
                continue
            cap = min(1.0, max_side / max(pixels.shape[:2]))
            for s in scales:
                f = s * cap
                h, w = round(pixels.shape[0] * f), round(pixels.shape[1] * f)
                if min(h, w) < crop:
                    continue
                small = pixels if f == 1 else cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
                self.images.append(small.reshape(h, w, channels))
        if not self.images:
            raise ValueError(f"no training image is at least {crop}x{crop} pixels")

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, n: int) -> torch.Tensor:
        out = np.empty((n, self.crop, self.crop, self.images[0].shape[2]), np.float32)
        for i in range(n):
            im = self.images[self.rng.integers(len(self.images))]
            t = self.rng.integers(im.shape[0] - self.crop + 1)
            l = self.rng.integers(im.shape[1] - self.crop + 1)
            patch = im[t:t + self.crop, l:l + self.crop]
            if self.flips:
                if self.rng.random() < 0.5:
                    patch = patch[:, ::-1]
                if self.rng.random() < 0.5:
                    patch = patch[::-1]
            out[i] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def random_missing(n: int, h: int, w: int, rng: np.random.Generator) -> torch.Tensor:
    """Random masks (1 = missing): scattered pixels, a rectangle, or strokes."""
    masks = np.zeros((n, 1, h, w), np.float32)
    for m in masks[:, 0]:
        kind = rng.integers(3)
        if kind == 0:
            m[:] = rng.random((h, w)) < rng.uniform(0.2, 0.8)
        elif kind == 1:
            rh, rw = rng.integers(h // 8, h // 2 + 1), rng.integers(w // 8, w // 2 + 1)
            t, l = rng.integers(h - rh + 1), rng.integers(w - rw + 1)
            m[t:t + rh, l:l + rw] = 1
        else:
            for _ in range(rng.integers(1, 5)):
                p, q = rng.integers(0, [w, h]), rng.integers(0, [w, h])
                cv2.line(m, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 1.0,
                         int(rng.integers(1, max(2, h // 10))))
    return torch.from_numpy(masks)


def degrade(x: torch.Tensor, kind: int, rng: np.random.Generator) -> torch.Tensor:
    """What the solver would hand the encoder for a damaged ``x``.

    ``kind`` 0: Gaussian noise of random sigma (up to 50/255), one noise image for
    all channels of a gray crop (as a gray file replicated into colour has); 1: random holes
    filled by the inpainting first guess; 2: bicubic down- and upsampling.
    The first guesses come from the operators themselves, so the encoder
    trains on exactly what it will see.
    """
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    if kind == 0:
        noise = float(rng.uniform(0, 50 / 255)) * torch.randn(x.shape, generator=g)
        gray = (x.amax(1) == x.amin(1)).flatten(1).all(1)
        noise[gray] = noise[gray][:, :1].expand(-1, x.shape[1], -1, -1)
        return (x + noise).clamp(0, 1)
    if kind == 1:
        op = Inpaint(random_missing(x.shape[0], x.shape[2], x.shape[3], rng))
        return op.initial_guess(op.observe(x, 0.0)).clamp(0, 1)
    scales = [s for s in (2, 4) if x.shape[2] % s == 0 and x.shape[3] % s == 0 and x.shape[2] // s >= 4]
    if not scales:
        return x
    op = Superres(int(rng.choice(scales)))
    return op.initial_guess(op.observe(x, 0.0)).clamp(0, 1)
