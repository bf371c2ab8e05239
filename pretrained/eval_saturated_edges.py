"""Measure how much of a hard edge of saturated colour the damage detector takes for damage.

    python pretrained/eval_saturated_edges.py [--detector runs/damage.pt] [--sure 2] [--join 0.0]

Twenty 96-pixel crops: ten smooth images (``tests/conftest.py``) with one side of a random straight
edge painted cyan, neon green, red, yellow or blue, and a grain of 6 levels, each read as it is and
with noise of sigma 12 (the detector told it). Nothing in them is damage, so every pixel found is
a false one. Prints the share found per crop on average, the largest, and how many crops are over
0.2 % (the bound ``tests/test_damage.py`` sets on its own noisy crop).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage.filters import apply_hysteresis_threshold

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from restore.damage import JOIN, SURE  # noqa: E402
from restore.detector import damage_log_odds, load_detector, read_detector  # noqa: E402
from tests.conftest import smooth_images  # noqa: E402

COLOURS = {"cyan": (0, 1, 1), "neon green": (0.2, 1, 0.1), "red": (1, 0, 0), "yellow": (1, 1, 0), "blue": (0, 0, 1)}


def saturated_edges(size: int = 96) -> list[tuple[np.ndarray, float]]:
    """The 20 cases, ``(pixels, noise)`` with ``noise`` in [0, 1] units; none of them holds damage."""
    out = []
    for k, colour in enumerate(COLOURS.values()):
        for seed in (5, 6):
            rng = np.random.default_rng(100 + 10 * k + seed)
            image = smooth_images(1, size, seed=seed + 10 * k)[0]
            yy, xx = np.mgrid[:size, :size] - size // 2
            angle = rng.uniform(0, np.pi)
            image[yy * np.cos(angle) + xx * np.sin(angle) > rng.uniform(-20, 20)] = colour
            grain = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.7)
            image = np.clip(image + 6 / 255 * grain[:, :, None] / grain.std(), 0, 1).astype(np.float32)
            for sigma in (0.0, 12 / 255):
                seen = np.clip(image + rng.normal(0, sigma, image.shape), 0, 1).astype(np.float32) if sigma else image
                out.append((seen, sigma))
    return out


def shares_taken(detector=None, *, sure: float = SURE, join: float = JOIN) -> np.ndarray:
    """The share of each case's pixels the detector (default: shipped) takes for damage at log-odds
    ``sure``, joining from ``join``."""
    detector = detector or load_detector()
    return np.array([apply_hysteresis_threshold(damage_log_odds(seen, noise=sigma, detector=detector), join, sure).mean()
                     for seen, sigma in saturated_edges()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", type=Path, help="a checkpoint of train_damage_detector.py (default: shipped)")
    parser.add_argument("--sure", type=float, default=float(np.exp(SURE)),
                        help="odds above which a pixel is damage (default: restore.damage.SURE's)")
    parser.add_argument("--join", type=float, default=JOIN, help="log-odds from which a neighbour joins")
    args = parser.parse_args()
    shares = shares_taken(read_detector(args.detector)[0] if args.detector else None,
                          sure=float(np.log(args.sure)), join=args.join)
    print(f"{len(shares)} crops: {100 * shares.mean():.3f} % of the pixels taken for damage on average, "
          f"{100 * shares.max():.3f} % at most, {(shares > 0.002).sum()} crops over 0.2 %")


if __name__ == "__main__":
    main()
