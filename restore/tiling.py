"""Restoring images larger than a tile: overlapping tiles, blended seams.

Tiles are laid out on the observation ``y``; each covers ``scale`` times as
many pixels of the restored image. All tiles have one size, so they can go
through the solver as a batch. Each restored tile is weighted by a window that
falls off linearly across the overlap, which hides the seams.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
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


#: Weight of a tile's outermost pixels: small, but never zero, so every pixel is covered.
_FLOOR = 1e-3


def _window(size: int, ramp: int, device) -> torch.Tensor:
    pos = torch.arange(size, device=device, dtype=torch.float32)
    edge = torch.minimum(pos + 1, size - pos) / max(ramp, 1)
    return edge.clamp(_FLOOR, 1.0)


@dataclass(frozen=True)
class TileLayout:
    """Where :func:`run_tiled` cuts an observation (see there for the arguments).

    Attributes
    ----------
    pad : (int, int)
        Rows and columns added below and to the right (edges repeated): up to the block grid for
        an image of more than one tile, and for an image smaller than a tile up to a side the
        prior takes.
    size : (int, int)
        A tile's observed height and width.
    overlap : int
        Observed pixels shared by neighbouring tiles.
    windows : list of (int, int)
        The tiles' top-left corners on the padded observation.
    """
    pad: tuple[int, int]
    size: tuple[int, int]
    overlap: int
    windows: list[tuple[int, int]]


def tile_layout(h: int, w: int, *, tile: int | tuple[int, int], overlap: int, multiple: int, scale: int = 1,
                margin: int = 0, grid: int = 1) -> TileLayout:
    """The tiles :func:`run_tiled` lays over an ``h x w`` observation (its arguments, the same
    meaning): how a caller counts them before the work."""
    if grid > 1 and (scale != 1 or margin):
        raise ValueError("tiles can follow a grid only where the output is the observation's size")
    tiles = (tile, tile) if isinstance(tile, int) else tuple(tile)
    if grid > 1 and h * scale <= tiles[0] and w * scale <= tiles[1] and all(t % multiple == 0 for t in tiles):
        grid = 1                     # one tile, starting at 0: on the grid whatever its size
    H, W = -(-h // grid) * grid, -(-w // grid) * grid

    def fits(side: int) -> bool:
        return (side * scale + 2 * margin) % multiple == 0 and side % grid == 0

    def fitting(side: int) -> int:
        """The largest tile side up to ``side`` that fits, else the smallest above (the core; a margin
        comes on top)."""
        largest = max(1, side // scale)
        above = range(largest + 1, largest + math.lcm(multiple, grid) + 1)     # one fits: the grid's too
        return next(t for t in itertools.chain(range(largest, 0, -1), above) if fits(t))

    t_h, t_w = fitting(tiles[0]), fitting(tiles[1])
    step = min(overlap // scale, min(t_h, t_w) // 2) // grid * grid
    # Small sides: one tile, padded up to a size the prior accepts.
    reach = range(multiple * grid + 1)
    H += next(p for p in reach if fits(H + p)) if H <= t_h else 0
    W += next(p for p in reach if fits(W + p)) if W <= t_w else 0
    th, tw = min(t_h, H), min(t_w, W)
    windows = [(t, l) for t in tile_starts(H, th, step) for l in tile_starts(W, tw, step)]
    return TileLayout(pad=(H - h, W - w), size=(th, tw), overlap=step, windows=windows)


def run_tiled(y: torch.Tensor, restore_tiles: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], *,
              tile: int | tuple[int, int], overlap: int, multiple: int, scale: int = 1, margin: int = 0, batch: int = 8,
              aux: torch.Tensor | None = None, skip: Callable[[torch.Tensor | None], bool] | None = None,
              on_tiles: Callable[[int], None] | None = None, grid: int = 1) -> torch.Tensor:
    """Apply ``restore_tiles`` to ``y`` (1, C, h, w) tile by tile.

    Parameters
    ----------
    restore_tiles : callable
        ``restore_tiles(y_tiles, aux_tiles)`` -> restored tiles of side
        ``scale * side + 2 * margin`` (``aux_tiles`` is None without ``aux``), with the
        image's channels and possibly more (blended alike).
    tile : int or (int, int)
        Tile size in restored-image pixels: a side, or the height and the width.
    overlap : int
        Tiles' overlap in restored-image pixels.
    multiple : int
        Restored tile sides must be multiples of this (the prior's constraint).
    scale : int
        Restored pixels per observed pixel along each side.
    margin : int
        Restored pixels beyond the observed tile on every side (a blur's
        support); they take part in the solve and have no weight in the blend.
    batch : int
        Tiles per call of ``restore_tiles``.
    aux : tensor (1, K, h, w), optional
        Per-pixel data of the observation (an inpainting mask), cut into the same tiles.
    skip : callable, optional
        ``skip(aux_tile)`` is True for a tile with nothing to restore (an inpainting tile
        without holes; only where ``scale`` is 1 and there is no margin): it is not
        restored, and every pixel no restored tile covers is returned exactly as observed.
    on_tiles : callable, optional
        Called with the number of tiles to restore once they are laid out.
    grid : int
        Tiles start on multiples of this many observed pixels and their sides are multiples
        of it (a JPEG's blocks); an image of more than one tile is padded (edges repeated, as
        a JPEG encoder does) to a multiple of it. Only with ``scale`` 1 and no margin.
    """
    if skip is not None and (scale != 1 or margin):
        raise ValueError("tiles can be skipped only where the output is the observation's size")
    _, c, h, w = y.shape
    layout = tile_layout(h, w, tile=tile, overlap=overlap, multiple=multiple, scale=scale, margin=margin, grid=grid)
    pad_h, pad_w = layout.pad
    if pad_h or pad_w:
        y = F.pad(y, (0, pad_w, 0, pad_h), mode="replicate")
        aux = None if aux is None else F.pad(aux, (0, pad_w, 0, pad_h), mode="replicate")
    H, W = y.shape[-2:]
    (th, tw), ov_obs, windows = layout.size, layout.overlap, layout.windows
    if skip is not None:
        windows = [(t, l) for t, l in windows if not skip(None if aux is None else aux[..., t:t + th, l:l + tw])]
    if on_tiles is not None:
        on_tiles(len(windows))
    out = None                       # as many channels as restore_tiles gives
    weight = torch.zeros(1, 1, H * scale + 2 * margin, W * scale + 2 * margin, device=y.device)
    ramp = ov_obs * scale
    win = _window(th * scale, ramp, y.device)[:, None] * _window(tw * scale, ramp, y.device)[None, :]
    win = F.pad(win, (margin,) * 4)         # the cores cover the image: margins need no weight
    oh, ow = win.shape
    for i in range(0, len(windows), batch):
        chunk = windows[i:i + batch]
        tiles = torch.cat([y[..., t:t + th, l:l + tw] for t, l in chunk])
        aux_tiles = None if aux is None else torch.cat([aux[..., t:t + th, l:l + tw] for t, l in chunk])
        restored = restore_tiles(tiles, aux_tiles)
        if out is None:
            out = torch.zeros(1, restored.shape[1], *weight.shape[-2:], device=y.device)
        for (t, l), r in zip(chunk, restored):
            ts, ls = t * scale, l * scale
            out[0, :, ts:ts + oh, ls:ls + ow] += r * win
            weight[0, 0, ts:ts + oh, ls:ls + ow] += win
    if out is None:                  # every tile skipped
        return y[..., :h, :w]
    if skip is not None:
        # Pixels that no restored tile reaches are the observation, bit for bit (and any
        # channel beyond the image's, such as a variance, is 0 there).
        observed = torch.cat([y, y.new_zeros(1, out.shape[1] - c, H, W)], 1)
        out = torch.where(weight > 0, out / weight.clamp_min(_FLOOR**2), observed)
    else:
        out = out / weight
    return out[..., margin:margin + h * scale, margin:margin + w * scale]


