"""Pack training crops into one file, for training on another machine (a lent GPU).

    python pretrained/pack_crops.py data/photos data/crops.npz
    restore train data/crops.npz --out runs/photo_large.pt ...

Random 128x128 crops of every photograph (capped at 1024 pixels, at full and half scale),
spread evenly over the photographs, in one compressed file of at most 60 MiB.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from restore.data import write_crop_pack
from restore.images import find_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--max-mib", type=float, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    count = write_crop_pack(find_images(args.photos), args.out, size=args.size,
                            max_bytes=int(args.max_mib * 2**20), seed=args.seed)
    print(f"{count} crops of {args.size}x{args.size} in {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
