"""Restoring images larger than a tile: overlapping tiles, blended seams.

Tiles are laid out on the observation ``y``; each covers ``scale`` times as
many pixels of the restored image. All tiles have one size, so they can go
through the solver as a batch. Each restored tile is weighted by a window that
falls off linearly across the overlap, which hides the seams.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` (``length >= tile``)."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _window(size: int, ramp: int, device) -> torch.Tensor:
    pos = torch.arange(size, device=device, dtype=torch.float32)
    edge = torch.minimum(pos + 1, size - pos) / max(ramp, 1)
    return edge.clamp(1e-3, 1.0)


def run_tiled(y: torch.Tensor, restore_tiles: Callable[[torch.Tensor, list], torch.Tensor], *,
              tile: int, overlap: int, multiple: int, scale: int = 1, batch: int = 8,
              on_tiles: Callable[[int], None] | None = None) -> torch.Tensor:
    """Apply ``restore_tiles`` to ``y`` (1, C, h, w) tile by tile.

    Parameters
    ----------
    restore_tiles : callable
        ``restore_tiles(y_tiles, windows)`` -> restored tiles, ``scale`` times larger;
        ``windows`` lists each tile's ``(top, left, height, width)`` in ``y``.
    tile, overlap : int
        Tile size and overlap in restored-image pixels.
    multiple : int
        Restored tile sides must be multiples of this (the prior's constraint).
    scale : int
        Restored pixels per observed pixel along each side.
    batch : int
        Tiles per call of ``restore_tiles``.
    on_tiles : callable, optional
        Called with the number of tiles once they are laid out.
    """
    _, c, h, w = y.shape
    step = multiple // _gcd(multiple, scale)                # observed-pixel granularity of a tile
    t_obs = max(step, (tile // scale) // step * step)
    ov_obs = min(overlap // scale, t_obs // 2)
    # Small sides: one tile, padded up to a size the prior accepts.
    pad_h = (-h) % step if h <= t_obs else 0
    pad_w = (-w) % step if w <= t_obs else 0
    if pad_h or pad_w:
        y = F.pad(y, (0, pad_w, 0, pad_h), mode="replicate")
    H, W = y.shape[-2:]
    th, tw = min(t_obs, H), min(t_obs, W)
    windows = [(t, l, th, tw) for t in tile_starts(H, th, ov_obs) for l in tile_starts(W, tw, ov_obs)]
    if on_tiles is not None:
        on_tiles(len(windows))
    out = torch.zeros(1, c, H * scale, W * scale, device=y.device)
    weight = torch.zeros(1, 1, H * scale, W * scale, device=y.device)
    ramp = ov_obs * scale
    win = (_window(th * scale, ramp, y.device)[:, None] * _window(tw * scale, ramp, y.device)[None, :])
    for i in range(0, len(windows), batch):
        chunk = windows[i:i + batch]
        tiles = torch.cat([y[..., t:t + hh, l:l + ww] for t, l, hh, ww in chunk])
        restored = restore_tiles(tiles, chunk)
        for (t, l, hh, ww), r in zip(chunk, restored):
            ts, ls = t * scale, l * scale
            out[0, :, ts:ts + hh * scale, ls:ls + ww * scale] += r * win
            weight[0, 0, ts:ts + hh * scale, ls:ls + ww * scale] += win
    out = out / weight
    return out[..., :h * scale, :w * scale]


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a
