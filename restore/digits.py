"""The handwritten digits of OpenCV's ``digits.png``, split as the digits prior uses them.

The sheet holds 5000 digits of 20x20 pixels: 50 rows of 100, each class
filling five consecutive rows. The first 80 columns of every row are the
training split, the last 20 the test split. Each digit is padded to 28x28 as
MNIST does (a 20x20 box centred in a 28x28 frame).
"""
from __future__ import annotations

import os

import numpy as np

from .images import read_image

CELL, PADDED, TRAIN_COLUMNS = 20, 28, 80


def digits_split(sheet: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Digits of one split as ``(images (N, 28, 28) float32 in [0, 1], labels (N,))``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    pixels = read_image(sheet).pixels[:, :, 0]
    rows, cols = pixels.shape[0] // CELL, pixels.shape[1] // CELL
    if (rows, cols) != (50, 100):
        raise ValueError(f"{sheet} is not OpenCV's digits.png (expected 50x100 cells, got {rows}x{cols})")
    cells = pixels.reshape(rows, CELL, cols, CELL).transpose(0, 2, 1, 3)
    labels = np.repeat(np.arange(10), 5)[:, None].repeat(cols, axis=1)
    keep = slice(0, TRAIN_COLUMNS) if split == "train" else slice(TRAIN_COLUMNS, cols)
    cells, labels = cells[:, keep].reshape(-1, CELL, CELL), labels[:, keep].reshape(-1)
    pad = (PADDED - CELL) // 2
    return np.pad(cells, ((0, 0), (pad, pad), (pad, pad))).astype(np.float32), labels
