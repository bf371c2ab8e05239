"""Uncertainty maps: the posterior standard deviation per pixel, as a file a person or a program reads.

A ``.png`` is a heat map on a fixed scale, so maps of different images compare: black is a
standard deviation of 0, the brightest yellow :data:`HEAT_MAP_TOP` or more, in 0..255 units
(the ``inferno`` colour map). A ``.tif``/``.tiff`` holds the values themselves, 32-bit float in
0..255 units.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import OutputError, write_atomic

#: The standard deviation (0..255 units) at the top of the heat map's colour scale.
HEAT_MAP_TOP = 32.0
RAW_SUFFIXES = (".tif", ".tiff")
SUFFIXES = (".png", *RAW_SUFFIXES)


def heat_map(std: np.ndarray) -> np.ndarray:
    """``(H, W)`` standard deviations in [0, 1] units -> ``(H, W, 3)`` uint8 RGB on the fixed scale."""
    import cv2
    level = np.clip(np.asarray(std, np.float32) * 255 / HEAT_MAP_TOP, 0, 1)
    return cv2.applyColorMap(np.round(level * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[:, :, ::-1]


def write_uncertainty(path: str | os.PathLike, std: np.ndarray) -> None:
    """Write the map of ``std`` (``(H, W)``, [0, 1] units) atomically; the suffix picks heat map or raw values."""
    import cv2
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise OutputError(f"{path}: an uncertainty map is .png (heat map) or .tif (raw values); rename it")
    if suffix in RAW_SUFFIXES:
        ok, data = cv2.imencode(suffix, np.asarray(std, np.float32) * 255)
    else:
        ok, data = cv2.imencode(".png", heat_map(std)[:, :, ::-1])
    if not ok:
        raise OutputError(f"{path}: could not encode the uncertainty map")
    write_atomic(path, data.tobytes())
