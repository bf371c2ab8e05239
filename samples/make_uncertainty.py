"""Posterior samples on the benchmark: their mean against the single estimate, and how well their spread
predicts the error; then the figure of the samples (damaged, restored, uncertainty, actual error).

    python samples/make_uncertainty.py samples/          # prints the tables, writes samples/uncertainty.png

The benchmark's photographs are damaged exactly as ``restore bench`` damages them (same seeds); the
sampler and its settings were chosen on held-out crops before this ran.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import spearmanr

from restore import SolverSettings, restore
from restore.bench import CONDITIONS, _condition_index, damage, score, skimage_photos
from restore.images import Picture, read_image, write_image
from restore.tasks import TASKS
from restore.uncertainty import heat_map

CONDITION_NAMES = ("noise25", "superres4", "inpaint-scribbles", "inpaint-box")
COUNTS = (1, 4, 16)


def calibration(std: np.ndarray, error: np.ndarray) -> tuple[float, float]:
    """Spearman correlation of predicted std and absolute error, and the share within 2 std."""
    rho = spearmanr(std.ravel(), error.ravel())[0]
    return float(rho), float(np.mean(error <= 2 * std))


def measure() -> None:
    photos = skimage_photos(256)
    print("| condition | samples | PSNR | SSIM | hole PSNR | seconds | Spearman | Spearman in holes | within 2 sd "
          "| within 2 sd in holes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for condition in [c for c in CONDITIONS if c.name in CONDITION_NAMES]:
        for count in COUNTS:
            settings = SolverSettings(samples=count)
            rows = []
            for index, (_, clean) in enumerate(photos):
                rng = np.random.default_rng([0, index, _condition_index(condition)])
                damaged, companion = damage(clean, condition, rng)
                start = time.perf_counter()
                if count > 1:
                    out, std = restore(damaged, condition.task, companion=companion, settings=settings,
                                       return_std=True)
                else:
                    out, std = restore(damaged, condition.task, companion=companion, settings=settings), None
                seconds = time.perf_counter() - start
                p, s, hole = score(clean, out, condition, companion)
                row = [p, s, hole if hole is not None else np.nan, seconds, np.nan, np.nan, np.nan, np.nan]
                if std is not None:
                    # The error of the image as written (8 bits): the benchmark's references are 8-bit
                    # files, so differences below half a level at the observed pixels are not errors.
                    written = np.round(out * 255) / 255
                    error = np.sqrt(((written - clean) ** 2).mean(axis=2))
                    row[4], row[6] = calibration(std, error)
                    if companion is not None:
                        row[5], row[7] = calibration(std[companion], error[companion])
                rows.append(row)
            table = np.array(rows, dtype=float)
            m = [np.nanmean(column) if np.isfinite(column).any() else np.nan for column in table.T]
            cells = [f"{v:.3f}" if np.isfinite(v) else "" for v in m]
            cells[3] = f"{m[3]:.2f}"
            print(f"| {condition.name} | {count} | {' | '.join(cells)} |", flush=True)


def figure(folder: Path) -> None:
    """One sample photograph per task: damaged, restored (mean of 16), uncertainty, actual error."""
    cases = [
        ("butterfly_noisy.png", None, TASKS["denoise"](sigma=25.0), "butterfly.png"),
        ("flower_masked.png", "flower_mask.png", TASKS["inpaint"](), "flower.png"),
        ("lake_small.png", None, TASKS["superres"](factor=4), "lake.png"),
    ]
    rows = []
    for damaged_name, mask_name, task, clean_name in cases:
        damaged = read_image(folder / damaged_name).pixels
        clean = read_image(folder / clean_name).pixels
        mask = None if mask_name is None else read_image(folder / mask_name).pixels[:, :, 0] > 0.5
        out, std = restore(damaged, task, companion=mask, settings=SolverSettings(samples=16), return_std=True)
        error = np.sqrt(((out - clean) ** 2).mean(axis=2))
        shown = cv2.resize(damaged, clean.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        rows.append([shown, out, heat_map(std) / 255.0, heat_map(error) / 255.0])
    gap = 4
    cell = rows[0][0].shape[0]
    sheet = np.ones((len(rows) * (cell + gap) - gap, 4 * (cell + gap) - gap, 3), np.float32)
    for r, panels in enumerate(rows):
        for c, panel in enumerate(panels):
            sheet[r * (cell + gap):r * (cell + gap) + cell, c * (cell + gap):c * (cell + gap) + cell] = panel
    write_image(folder / "uncertainty.png", Picture(sheet))


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "samples")
    measure()
    figure(target)
    print(f"wrote {target / 'uncertainty.png'}")
