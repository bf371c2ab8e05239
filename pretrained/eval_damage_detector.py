"""Measure ``inpaint --mask auto`` on generated damage over images of our own (never the benchmark's).

    python pretrained/build_training_data.py data/                    # writes data/photos/, data/held_out/
    python pretrained/eval_damage_detector.py data/                   # the shipped network
    python pretrained/eval_damage_detector.py data/ --detector runs/damage4.pt --sure 4 --join -1
    python pretrained/eval_damage_detector.py data/ --given           # the yardstick: the true mask given

48 crops of 256x256 with a fixed seed from the fifth of the training photographs the detector never
trains on (``train_damage_detector.held_out``) and from the held-out photographs; a third turned
gray, a quarter with noise of sigma 5 (the task is told it), then old-photo damage
(``restore.masks.old_photo_damage``), all stored as 8-bit. Per crop and on average: PSNR of the
whole image, of the intact pixels (capped at 100 dB), and precision and recall of the pixels the
restoration changed against the damage, as ``restore bench`` scores ``inpaint-unmasked``. The
thresholds ``restore.damage.SURE`` and ``JOIN`` are chosen here.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from restore.images import Picture, find_images, quantize, read_image, to_integer
from restore.masks import old_photo_damage

SIZE, COUNT, SEED = 256, 48, 5
GRAY = np.array([0.299, 0.587, 0.114], np.float32)


def damaged_crops(data: Path) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float]]:
    """``(name, clean, damaged, damage, sigma)`` for each crop, pixels in [0, 1] as 8-bit files hold them."""
    try:
        from train_damage_detector import held_out               # run as a script, beside it
    except ImportError:
        from pretrained.train_damage_detector import held_out
    files = [p for p in find_images(data / "photos") if held_out(p)] + list(find_images(data / "held_out"))
    rng = np.random.default_rng(SEED)
    out = []
    while len(out) < COUNT:
        path = files[rng.integers(len(files))]
        pixels = read_image(path).pixels
        if min(pixels.shape[:2]) < SIZE:
            continue
        pixels = pixels[:, :, :3] if pixels.shape[2] >= 3 else np.repeat(pixels[:, :, :1], 3, axis=2)
        top, left = rng.integers(pixels.shape[0] - SIZE + 1), rng.integers(pixels.shape[1] - SIZE + 1)
        clean = pixels[top:top + SIZE, left:left + SIZE]
        if len(out) % 3 == 0:
            clean = (clean @ GRAY)[:, :, None]
        sigma = 5.0 if len(out) % 4 == 1 else 0.0
        if sigma:
            clean = clean + rng.normal(0, sigma / 255, clean.shape)
        clean = _eight_bit(clean)
        damaged, damage = old_photo_damage(clean, rng)
        out.append((path.stem, clean, _eight_bit(damaged), damage, max(sigma, 1.0)))
    return out


def _eight_bit(pixels: np.ndarray) -> np.ndarray:
    return quantize(Picture(np.clip(pixels, 0, 1).astype(np.float32)), ".png")


def scores(clean: np.ndarray, damaged: np.ndarray, restored: np.ndarray, damage: np.ndarray) -> tuple[float, ...]:
    """Whole-image PSNR, intact-pixel PSNR (at most 100), precision and recall of the pixels
    changed, as ``restore bench`` scores damage nobody masked (:func:`restore.bench.blind_scores`)."""
    from restore.bench import blind_scores
    from restore.metrics import psnr
    blind = blind_scores(clean, damaged, restored, damage)
    return (psnr(to_integer(clean, 8), to_integer(restored, 8)), blind["intact_psnr"], blind["precision"],
            blind["recall"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the folder build_training_data.py wrote")
    parser.add_argument("--detector", type=Path, help="a checkpoint of train_damage_detector.py (default: shipped)")
    parser.add_argument("--sure", type=float, help="odds above which a pixel is damage (default: restore.damage.SURE)")
    parser.add_argument("--join", type=float, help="log-odds from which a neighbour joins (default: restore.damage.JOIN)")
    parser.add_argument("--given", action="store_true", help="fill the true damage instead of finding it")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    args = parser.parse_args()

    import torch

    from restore import damage, detector
    from restore.pipeline import SolverSettings, restore
    from restore.tasks import Inpaint
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.detector is not None:
        network = detector.read_detector(args.detector)[0]
        detector.load_detector = lambda: network
    if args.sure is not None:
        damage.SURE = float(np.log(args.sure))
    if args.join is not None:
        damage.JOIN = args.join
    settings, rows, start = SolverSettings(), [], time.perf_counter()
    for name, clean, damaged, found, sigma in damaged_crops(args.data):
        task = Inpaint(sigma=sigma)
        restored = (restore(damaged, task, companion=found, settings=settings) if args.given
                    else damage.repair(damaged, task, settings=settings).pixels)
        rows.append(scores(clean, damaged, restored, found))
        print("{:40.40s} whole {:6.2f}  intact {:6.2f}  precision {:.3f}  recall {:.3f}".format(name, *rows[-1]), flush=True)
    print("{:40s} whole {:6.2f}  intact {:6.2f}  precision {:.3f}  recall {:.3f}  ({:.0f} s)".format(
        "mean", *np.mean(rows, axis=0), time.perf_counter() - start))


if __name__ == "__main__":
    main()
