"""Training data: random crops of clean photographs, and converting between gray and colour."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .images import ImageError, read_image

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
