"""Rebuild the training data of the shipped priors from public Debian packages.

    python pretrained/build_training_data.py data/

writes ``data/photos/`` (the photographs the photo prior trains on),
``data/digits_train/`` and ``data/digits_test/`` (28x28 PNGs of OpenCV's digits
sheet). Needs ``apt-get`` and ``dpkg`` (Debian or Ubuntu). The held-out
photographs that ``samples/`` were cut from are listed in HELD_OUT and are never
copied into the training folder.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OPENCV = "usr/share/doc/opencv-doc/examples/data"
MATE = "usr/share/backgrounds/mate/nature"
PLASMA = "usr/share/wallpapers"

# (package, path inside the package): photographs only, one resolution per wallpaper.
PHOTOS = [
    *(("opencv-doc", f"{OPENCV}/{name}") for name in (
        "fruits.jpg", "baboon.jpg", "leuvenA.jpg", "leuvenB.jpg", "ela_original.jpg", "squirrel_cls.jpg",
        "home.jpg", "aloeL.jpg", "basketball1.png", "orange.jpg", "chicky_512.png", "stuff.jpg",
        "rubberwhale1.png", "messi5.jpg", "graf1.png", "aero1.jpg", "aero3.jpg", "box.png",
        "box_in_scene.png", "apple.jpg", "building.jpg")),
    *(("mate-backgrounds", f"{MATE}/{name}") for name in (
        "Garden.jpg", "Dune.jpg", "Wood.jpg", "Aqua.jpg", "TwoWings.jpg", "Storm.jpg", "GreenMeadow.jpg",
        "RainDrops.jpg", "Blinds.jpg", "FreshFlower.jpg", "LadyBird.jpg")),
    *(("plasma-workspace-wallpapers", f"{PLASMA}/{name}/contents/images/2560x1600.jpg") for name in (
        "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "FallenLeaf", "Grey", "Kite",
        "OneStandsOut", "Path", "summer_1am")),
]
# Held out of training: the sources of samples/.
HELD_OUT = [
    ("opencv-doc", f"{OPENCV}/butterfly.jpg"),
    ("mate-backgrounds", f"{MATE}/YellowFlower.jpg"),
    ("plasma-workspace-wallpapers", f"{PLASMA}/EveningGlow/contents/images/2560x1600.jpg"),
]
PACKAGES = sorted({pkg for pkg, _ in PHOTOS + HELD_OUT})


def unpack(packages: list[str], into: Path) -> None:
    debs = into / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *packages], cwd=debs, check=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(into / "root")], check=True)


def copy_photos(photos: list[tuple[str, str]], root: Path, folder: Path) -> None:
    """Copy as ``<package>__<name>``; a plasma wallpaper is named by its folder, not its resolution."""
    folder.mkdir(parents=True, exist_ok=True)
    for pkg, rel in photos:
        src = root / rel
        name = src.parent.parent.parent.name + src.suffix if pkg.startswith("plasma") else src.name
        shutil.copy(src, folder / f"{pkg}__{name}")


def main(out: Path) -> None:
    from restore.digits import digits_split
    from restore.images import Picture, write_image

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        unpack(PACKAGES, root)
        copy_photos(PHOTOS, root / "root", out / "photos")
        copy_photos(HELD_OUT, root / "root", out / "held_out")
        for split in ("train", "test"):
            folder = out / f"digits_{split}"
            folder.mkdir(parents=True, exist_ok=True)
            images, labels = digits_split(root / "root" / OPENCV / "digits.png", split)
            for i, (im, label) in enumerate(zip(images, labels)):
                write_image(folder / f"{label}_{i:04d}.png", Picture(pixels=im[:, :, None]))
    print(f"{len(PHOTOS)} photographs, digits train/test and {len(HELD_OUT)} held-out photographs in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data"))
