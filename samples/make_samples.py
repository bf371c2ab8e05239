"""Regenerate the sample images from the held-out photographs.

    python pretrained/build_training_data.py data/     # writes data/held_out/
    python samples/make_samples.py data/held_out samples/

Each clean sample is a 256x256 crop of a photograph that the shipped priors
never trained on; the damaged versions are made with fixed seeds.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from restore import conditions
from restore.images import Picture, read_image, write_image
from restore.masks import draw_strokes
from restore.physics import Downsampling
from restore.tasks import Deblur

# (output name, held-out file, downscale factor first, top, left) of each 256x256 crop.
CROPS = [
    ("butterfly", "opencv-doc__butterfly.jpg", 1.0, 60, 150),
    ("flower", "mate-backgrounds__YellowFlower.jpg", 0.25, 72, 200),
    ("lake", "plasma-workspace-wallpapers__EveningGlow.jpg", 0.25, 144, 40),
]
SIZE = 256


def crop(path: Path, factor: float, top: int, left: int) -> np.ndarray:
    pixels = read_image(path).pixels
    if factor != 1.0:
        h, w = pixels.shape[:2]
        pixels = cv2.resize(pixels, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(pixels[top:top + SIZE, left:left + SIZE])


def scribble_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """Strokes, a line of text and a small rectangle: white (1) = missing."""
    mask = np.zeros((size, size), np.uint8)
    draw_strokes(mask, rng, 4, lambda: rng.integers(3, 7))
    cv2.putText(mask, "restore", (20, size - 40), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 1, 5)
    mask[40:72, 150:190] = 1
    return mask.astype(bool)


def main(held_out: Path, out: Path) -> None:
    rng = np.random.default_rng(2026)
    clean = {name: crop(held_out / file, f, t, l) for name, file, f, t, l in CROPS}
    for name, pixels in clean.items():
        write_image(out / f"{name}.png", Picture(pixels))
    noisy = clean["butterfly"] + rng.normal(0, 25 / 255, clean["butterfly"].shape).astype(np.float32)
    write_image(out / "butterfly_noisy.png", Picture(np.clip(noisy, 0, 1)))
    mask = scribble_mask(SIZE, rng)
    holed = clean["flower"].copy()
    holed[mask] = 1.0
    write_image(out / "flower_masked.png", Picture(holed))
    write_image(out / "flower_mask.png", Picture(mask[:, :, None].astype(np.float32)))
    lake = torch.from_numpy(clean["lake"]).permute(2, 0, 1)[None]
    small = Downsampling(lake.shape[-2:], 4).A(lake)[0].permute(1, 2, 0).clamp(0, 1).numpy()
    write_image(out / "lake_small.png", Picture(small))
    write_image(out / "butterfly_blurred.png", Picture(blurred(clean["butterfly"])))
    # Scratches and dust as an old print carries them, for restore inpaint --mask auto.
    from restore.masks import old_photo_damage
    scratched, _ = old_photo_damage(clean["lake"], np.random.default_rng(2027))
    write_image(out / "lake_scratched.png", Picture(np.clip(scratched, 0, 1)))
    # A JPEG of quality 10 (Pillow, 4:2:0 chroma), for restore dejpeg.
    from PIL import Image
    Image.open(out / "butterfly.png").convert("RGB").save(out / "butterfly_q10.jpg", "JPEG", quality=10)


def blurred(clean: np.ndarray) -> np.ndarray:
    """A 15-pixel motion blur at 30 degrees, borders reflected, and noise of sigma 2.55 (its own seed)."""
    task = Deblur(kernel="motion:15,30", sigma=2.55)
    damaged = conditions.blurred(task)(clean, np.random.default_rng(2027)).pixels
    return np.clip(damaged, 0, 1).astype(np.float32)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
