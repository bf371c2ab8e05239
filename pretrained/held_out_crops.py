"""Cut the validation crops that priors and defaults are chosen on.

    python pretrained/build_training_data.py data/          # writes data/held_out/
    python pretrained/held_out_crops.py data/held_out data/val128
    restore bench data/val128 --size 0 --model runs/photo.pt -o runs/val-photo

    python pretrained/held_out_crops.py data/held_out_objects data/valobjects

Each held-out photograph (never trained on, not the benchmark) is scaled so its
longer side is 640 pixels, and ``--per-image`` random square crops of ``--size``
pixels are cut from it with a fixed seed. A photographed object cut out on
transparency (``data/held_out_objects``) gives one crop instead, at its own
scale: the square centred where its opaque area reaches farthest from the
transparency. ``restore bench`` on the folder then measures a prior against the
classical methods on every benchmark condition.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from restore.images import Picture, find_images, read_image, write_image

LONG_SIDE = 640


def crops(pixels: np.ndarray, *, size: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` random ``size`` x ``size`` crops of ``pixels`` scaled to a long side of 640."""
    h, w = pixels.shape[:2]
    f = LONG_SIDE / max(h, w)
    scaled = cv2.resize(pixels, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    scaled = scaled.reshape(*scaled.shape[:2], -1)
    tops = rng.integers(0, scaled.shape[0] - size + 1, count)
    lefts = rng.integers(0, scaled.shape[1] - size + 1, count)
    return [np.ascontiguousarray(scaled[t:t + size, l:l + size]) for t, l in zip(tops, lefts)]


def opaque_crop(pixels: np.ndarray, alpha: np.ndarray, *, size: int) -> np.ndarray | None:
    """The ``size`` square of ``pixels`` centred at the opaque pixel farthest (in the chessboard
    distance) from any transparent one or the border, or None where no opaque square fits."""
    opaque = np.pad((alpha >= 1).astype(np.uint8), 1)
    distance = cv2.distanceTransform(opaque, cv2.DIST_C, 3)[1:-1, 1:-1]
    if 2 * distance.max() - 1 < size:
        return None
    i, j = np.unravel_index(distance.argmax(), distance.shape)
    top, left = i - size // 2, j - size // 2
    return np.ascontiguousarray(pixels[top:top + size, left:left + size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("held_out", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--per-image", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in find_images(args.held_out):
        picture = read_image(path)
        if picture.alpha is not None:
            crop = opaque_crop(picture.pixels, picture.alpha, size=args.size)
            if crop is None:
                print(f"{path}: no opaque square of {args.size} px, left out")
                continue
            write_image(args.out / f"{path.stem}.png", Picture(crop))
            written += 1
            continue
        for i, pixels in enumerate(crops(picture.pixels, size=args.size, count=args.per_image, rng=rng)):
            write_image(args.out / f"{path.stem}_{i}.png", Picture(pixels))
            written += 1
    print(f"{written} crops of {args.size}x{args.size} in {args.out}")


if __name__ == "__main__":
    main()
