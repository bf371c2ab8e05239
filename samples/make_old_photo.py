"""Redraw samples/old_photo.png: the scratched lake, the damage restore found in it (inpaint --mask
auto), the restoration, and the restoration's uncertainty map (16 samples).

    python samples/make_old_photo.py samples/
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from restore import SolverSettings
from restore.damage import repair
from restore.images import Picture, read_image, write_image
from restore.tasks import Inpaint


def main(folder: Path) -> None:
    damaged = read_image(folder / "lake_scratched.png").pixels
    found = repair(damaged, Inpaint(), settings=SolverSettings(samples=16), return_std=True)
    std = np.clip(found.std * 255 / 16, 0, 1)
    heat = cv2.applyColorMap(np.round(std * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[:, :, ::-1] / 255
    panels = [damaged, np.repeat(found.mask[:, :, None], 3, 2).astype(np.float32), found.pixels, heat]
    labels = ["scratched", "damage found", "restored (--mask auto)", "uncertainty (std, 0-16)"]
    tiles = []
    for label, panel in zip(labels, panels):
        tile = np.full((panel.shape[0] + 24, panel.shape[1], 3), 255, np.uint8)
        tile[24:] = np.round(np.clip(panel, 0, 1) * 255)
        cv2.putText(tile, label, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.pad(tile, ((2, 2), (2, 2), (0, 0)), constant_values=255))
    write_image(folder / "old_photo.png", Picture(np.hstack(tiles).astype(np.float32) / 255))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
