"""Bicubic resizing as explicit matrices, with MATLAB ``imresize`` conventions.

Antialiased bicubic downsampling is the standard degradation of super-resolution
benchmarks. Writing it as two matrices (``y = R_h x R_w^T``) gives the
super-resolution operator an exact adjoint for free.
"""
from __future__ import annotations

import functools

import numpy as np
import torch


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
            + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


@functools.lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int) -> np.ndarray:
    """The ``(out_len, in_len)`` matrix of bicubic resizing along one axis.

    Follows MATLAB ``imresize``: Keys cubic kernel (a = -0.5), antialiasing when
    shrinking (the kernel is stretched by the scale), symmetric boundaries.
    """
    if in_len < 1 or out_len < 1:
        raise ValueError(f"lengths must be positive, got {in_len} -> {out_len}")
    scale = out_len / in_len
    width = 4.0 / min(scale, 1.0)
    out = np.arange(1, out_len + 1, dtype=np.float64)
    centre = out / scale + 0.5 * (1 - 1 / scale)           # 1-based input coordinate
    left = np.floor(centre - width / 2)
    taps = int(np.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]          # 1-based input indices
    dist = centre[:, None] - idx
    weights = min(scale, 1.0) * _cubic(min(scale, 1.0) * dist)
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric boundary: index -1 -> 0, in_len -> in_len - 1, and so on.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len))
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps), cols.ravel()), weights.ravel())
    return matrix


def resize_matrices(in_hw: tuple[int, int], out_hw: tuple[int, int], *, device=None,
                    dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column matrices ``(R_h, R_w)`` as tensors."""
    r_h = torch.as_tensor(resize_matrix(in_hw[0], out_hw[0]), dtype=dtype, device=device)
    r_w = torch.as_tensor(resize_matrix(in_hw[1], out_hw[1]), dtype=dtype, device=device)
    return r_h, r_w


def imresize(x: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of ``(..., H, W)`` to ``out_hw`` (antialiased when shrinking)."""
    r_h, r_w = resize_matrices(tuple(x.shape[-2:]), tuple(out_hw), device=x.device, dtype=x.dtype)
    return r_h @ x @ r_w.T
