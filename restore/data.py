"""Training data: random crops of clean photographs, and converting between gray and colour."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

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


def is_grey(y: torch.Tensor) -> bool:
    """Whether colour images ``(N, 3, H, W)`` are grey ones as :func:`to_channels` replicates them:
    three copies of one channel, so of one draw of any noise."""
    return y.shape[1] == 3 and bool((y[:, 1:] == y[:, :1]).all())


def is_colour(y: torch.Tensor) -> bool:
    """Whether images ``(N, C, H, W)`` are colour ones: three channels, not all three copies of one
    (:func:`is_grey`)."""
    return y.shape[1] == 3 and not is_grey(y)


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """Luma (N, 1, H, W) of colour images (N, 3, H, W), as :func:`to_channels` computes it."""
    return (x * torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def write_crop_pack(files: list[Path], out: Path, *, size: int = 128, max_bytes: int = 60 * 2**20,
                    scales=(1.0, 0.5), max_side: int = 1024, seed: int = 0, rounds: int = 32) -> int:
    """Cut random ``size`` x ``size`` crops of the photographs in ``files`` (each capped to
    ``max_side`` and at each of ``scales``) into one compressed file of at most ``max_bytes``:
    training data that travels to another machine in one piece. Returns the number of crops.

    The crops are spread evenly over the images, in rounds of one crop per image, until the
    compressed file would pass ``max_bytes`` or after ``rounds`` rounds.
    """
    import io
    rng = np.random.default_rng(seed)
    images = CropSampler(files, channels=3, crop=size, scales=scales, max_side=max_side, seed=seed).images
    crops: list[np.ndarray] = []
    blob = b""
    for _ in range(rounds):
        batch = []
        for im in images:
            t, l = rng.integers(im.shape[0] - size + 1), rng.integers(im.shape[1] - size + 1)
            batch.append(np.round(im[t:t + size, l:l + size] * 255).astype(np.uint8))
        buffer = io.BytesIO()
        np.savez_compressed(buffer, crops=np.stack(crops + batch))
        if buffer.tell() > max_bytes:
            break
        crops += batch
        blob = buffer.getvalue()
    if not crops:
        raise ValueError(f"one crop of each image is over {max_bytes} bytes; raise the limit or lower the size")
    Path(out).write_bytes(blob)
    return len(crops)


class CropPackError(ValueError):
    """A file given as a pack of crops that is not one :func:`write_crop_pack` writes."""


def read_crop_pack(path: Path, channels: int) -> list[np.ndarray]:
    """The crops of a file written by :func:`write_crop_pack`, as (S, S, C) float32 in [0, 1];
    a :class:`CropPackError` naming the file where it holds none."""
    fix = "make one with pretrained/pack_crops.py, or give a folder of images"
    try:
        with np.load(path, allow_pickle=False) as pack:
            crops = pack["crops"] if "crops" in getattr(pack, "files", ()) else None
    except (OSError, ValueError, EOFError) as e:
        raise CropPackError(f"{path}: not a pack of crops ({type(e).__name__}); {fix}") from None
    if crops is None:
        raise CropPackError(f"{path}: holds no 'crops' array, so it is no pack of crops; {fix}")
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[-1] not in (1, 3) or not len(crops):
        raise CropPackError(f"{path}: its crops are {crops.dtype} of shape {crops.shape}, where a pack holds "
                            f"(count, size, size, 1 or 3) 8-bit crops, at least one; {fix}")
    return [to_channels(c.astype(np.float32) / 255, channels) for c in crops]


class CropSampler:
    """Random ``crop x crop`` patches from a set of images, at several scales, flipped at random.

    Each image is held in memory at every scale of ``scales`` (relative to the
    image capped to ``max_side``) at which it still fits a crop; one that fits none is left out and
    listed in :attr:`too_small`. A file that cannot be read is left out, listed in :attr:`unreadable`
    and told to ``note`` (its :class:`ImageError`). :attr:`image_count` counts the images used.
    """

    def __init__(self, files: list[Path], *, channels: int, crop: int, scales=(1.0, 0.5),
                 flips: bool = True, max_side: int = 1024, seed: int = 0,
                 note: Callable[[ImageError], None] | None = None):
        self.crop, self.flips = crop, flips
        self.rng = np.random.default_rng(seed)
        self.images: list[np.ndarray] = []
        self.unreadable: list[Path] = []
        self.too_small: list[tuple[Path, tuple[int, int]]] = []       # each with its (height, width)
        given = len(files)
        if len(files) == 1 and Path(files[0]).suffix == ".npz":
            self.images = [im.reshape(*im.shape[:2], -1) for im in read_crop_pack(files[0], channels)
                           if min(im.shape[:2]) >= crop]
            files = []
        for path in files:
            try:
                pixels = to_channels(read_image(path).pixels, channels)
            except ImageError as e:
                self.unreadable.append(Path(path))
                if note is not None:
                    note(e)
                continue
            cap = min(1.0, max_side / max(pixels.shape[:2]))
            held = len(self.images)
            for s in scales:
                f = s * cap
                h, w = round(pixels.shape[0] * f), round(pixels.shape[1] * f)
                if min(h, w) < crop:
                    continue
                small = pixels if f == 1 else cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
                self.images.append(small.reshape(h, w, channels))
            if len(self.images) == held:
                self.too_small.append((Path(path), pixels.shape[:2]))
        # (a pack of crops counts its crops: they are its images)
        self.image_count = len(self.images) if not files else given - len(self.unreadable) - len(self.too_small)
        if given and len(self.unreadable) == given:
            raise ValueError(f"none of the {given} image files could be read")
        if not self.images:
            what = "crop of the pack" if files == [] and given else "training image"
            raise ValueError(f"no {what} is at least {crop}x{crop} pixels")

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, n: int, rng: np.random.Generator | None = None) -> torch.Tensor:
        """``n`` random crops (N, C, crop, crop) float32, drawn with ``rng`` (default the sampler's own)."""
        rng = self.rng if rng is None else rng
        out = np.empty((n, self.crop, self.crop, self.images[0].shape[2]), np.float32)
        for i in range(n):
            im = self.images[rng.integers(len(self.images))]
            t = rng.integers(im.shape[0] - self.crop + 1)
            l = rng.integers(im.shape[1] - self.crop + 1)
            patch = im[t:t + self.crop, l:l + self.crop]
            if self.flips:
                if rng.random() < 0.5:
                    patch = patch[:, ::-1]
                if rng.random() < 0.5:
                    patch = patch[::-1]
            out[i] = patch
        if out.dtype != np.float32:
            out = out.astype(np.float32)
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def colour_augment(x: torch.Tensor, rng: np.random.Generator, fraction: float) -> torch.Tensor:
    """Recolour a random ``fraction`` of the colour crops ``x`` (N, 3, H, W), staying within sRGB.

    Each chosen crop gets its channels permuted, its hue turned about the gray axis by a random
    angle, and its saturation raised (up to 2.5 times): the photographs a prior trains on rarely
    hold saturated magenta, cyan or violet, and a prior that never saw a colour redraws it as
    one it knows. Gray crops stay gray (a gray pixel is fixed by all three changes).
    """
    if fraction <= 0 or x.shape[1] != 3:
        return x
    out = x.clone()
    axis = torch.full((3,), 3 ** -0.5, dtype=torch.float64)
    cross = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=torch.float64)
    for i in np.flatnonzero(rng.random(len(x)) < fraction):
        angle = rng.uniform(-np.pi, np.pi)
        # Rodrigues' rotation about the gray axis (1, 1, 1) / sqrt(3).
        turn = (np.cos(angle) * torch.eye(3, dtype=torch.float64) + np.sin(angle) * cross
                + (1 - np.cos(angle)) * torch.outer(axis, axis))
        crop = x[i][list(rng.permutation(3))]
        crop = torch.einsum("ij,jhw->ihw", turn.to(x.dtype), crop)
        gray = crop.mean(0, keepdim=True)
        out[i] = (gray + rng.uniform(1.0, 2.5) * (crop - gray)).clamp(0, 1)
    return out
