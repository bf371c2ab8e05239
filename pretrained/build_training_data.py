"""Rebuild the training data of the shipped priors from public Debian packages.

    python pretrained/build_training_data.py data/

writes ``data/photos/`` (the photographs the photo prior trains on, as PNG),
``data/held_out/`` (the photographs that ``samples/`` were cut from, copied
unchanged and never used for training), ``data/held_out_objects/`` (photographed
objects on transparency, held out too, for the validation crops' textures) and ``data/digits_train/`` and
``data/digits_test/`` (28x28 PNGs of OpenCV's digits sheet). Needs ``apt-get``
and ``dpkg`` (Debian 12 "bookworm"; the package versions are pinned in
PACKAGES, so the same files come back). About 1 GB is downloaded.

Every training photograph is written as ``<package>__<name>.png`` with its long
side at most 1024 px (cv2.INTER_AREA); one decoded from JPEG or lossy WebP (admitted
with a short side of 600 px or more and no visible blocks) is shrunk by 2x or more,
so the prior learns photographs, not JPEG blocks. The selection (real
photographs only, one resolution of each, no near-duplicates) was made by eye,
see pretrained/README.md, "Training data".
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

# Debian 12 versions used; each package's licence is in the model card.
PACKAGES = {
    "opencv-doc": "4.6.0+dfsg-12",
    "mate-backgrounds": "1.26.0-1",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "enlightenment-data": "0.25.4-2",
    "lxqt-themes": "1.2.0-1",
    "palapeli-data": "4:22.12.3-1",
    "digikam-data": "4:7.9.0-1",
    "libelementary-data": "1.26.3-1",
    "visp-images-data": "3.5.0-1",
    "sddm-theme-maldives": "0.19.0-5",
    "gcompris-qt-data": "3.1-2",
    "tuxtype-data": "1.8.3-5.1",
    "tuxmath-data": "2.0.3-9",
    "kphotoalbum": "5.9.1-1",
    "scribus-template": "1.2.4.1-6",
    "gimp-help-en": "2.10.34-2",
    "libjxl-testdata": "0.0~git20230110.d6168ff-1",
    "tuxpaint-stamps-default": "2022.06.04-1",
}
OPENCV = "usr/share/doc/opencv-doc/examples/data"
MATE = "usr/share/backgrounds/mate/nature"
PLASMA = "usr/share/wallpapers"
E_BG = "usr/share/enlightenment/data/backgrounds"
LXQT = "usr/share/lxqt/wallpapers"
PALAPELI = "usr/share/palapeli/collection"
GCOMPRIS = "usr/share/gcompris-qt/rcc"  # Qt resource archives: "<archive>.rcc/<file inside>"
ACTIVITY = GCOMPRIS + "/{0}.rcc/gcompris/src/activities/{0}/resource"
GIMP_HELP = "usr/share/gimp/2.0/help/en/images"
JXL = "usr/share/libjxl-testdata"
STAMPS = "usr/share/tuxpaint/stamps"

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
    # Edje files: the largest of the JPEG resolutions inside is used (see edje_jpeg).
    *(("enlightenment-data", f"{E_BG}/{name}.edj") for name in (
        "Bamboo", "God-Rays", "Green-Maple", "Lichen-Branches", "Mountain", "Peaks", "Red-Maple",
        "Sea-of-Lanterns", "Snow-Trees", "Spruce-Needles", "Sunset-Clouds", "White-Flower", "Yellow-Flower")),
    *(("lxqt-themes", f"{LXQT}/{name}") for name in (
        "Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png", "beam.png",
        "butterfly.png", "cloud.png", "drop.png", "flowers.png", "fog.jpg", "this-is-not-windows.jpg")),
    ("palapeli-data", f"{PALAPELI}/european-honey-bee.jpg"),
    ("palapeli-data", f"{PALAPELI}/panther-chameleon-female.jpg"),
    ("digikam-data", "usr/share/digikam/about/images/body-background.jpg"),
    ("libelementary-data", "usr/share/elementary/images/insanely_huge_test_image.jpg"),
    ("visp-images-data", "usr/share/visp-images-data/ViSP-images/Solvay/Solvay_conference_1927_Version2_2126x1463.png"),
    ("sddm-theme-maldives", "usr/share/sddm/themes/maldives/background.jpg"),
    *(("gcompris-qt-data", f"{GCOMPRIS}/erase.rcc/gcompris/src/activities/erase/resource/{name}.webp") for name in (
        "gorilla", "northern_harrier", "pika", "caterpillar", "giraffe", "calf", "penguin", "nubian_ibex",
        "camels", "macaque", "swans", "dolphin", "long_nosed_monkey", "kingfisher", "heron", "chamaeleon",
        "flying_fox", "gibbon", "rhinoceros", "crab", "goat", "toucan", "gosling", "horse", "alpaca", "cheetah",
        "butterfly", "bee", "meerkats", "kitten", "red_panda", "squirrel", "spoonbills")),
    *(("gcompris-qt-data", f"{GCOMPRIS}/clickgame.rcc/gcompris/src/activities/clickgame/resource/{name}.webp")
      for name in ("sea2", "sea3", "sea4", "sea6")),
    *(("tuxtype-data", f"usr/share/tuxtype/images/kcas{i}.jpg") for i in range(12)),
    ("tuxmath-data", "usr/share/tuxmath/images/title/menu_bkg.jpg"),
    # JPEG/WebP with a short side of 600-1023 px (good quality, shrunk 2x like every lossy source).
    ("gcompris-qt-data", f"{ACTIVITY.format('clickgame')}/sea5.webp"),
    *(("gcompris-qt-data", f"{ACTIVITY.format('explore_farm_animals')}/animals/{name}.webp") for name in (
        "dog", "cow", "cat", "chicken", "horse", "duck", "sheep", "owl", "pig")),
    *(("gcompris-qt-data", f"{ACTIVITY.format('explore_world_animals')}/animals/{name}.webp") for name in (
        "giraffe", "koala", "bison", "dragon", "jaguar", "hedgehog", "kangaroo", "moose", "panda", "chameleon",
        "lemur", "polar_bear")),
    *(("gcompris-qt-data", f"{ACTIVITY.format('explore_world_music')}/music/{name}.webp") for name in (
        "italy", "america", "australia", "japan", "orchestra", "africa", "mexico")),
    *(("gcompris-qt-data", f"{ACTIVITY.format('explore_monuments')}/{name}.webp") for name in (
        "usa/canyondeChelly", "usa/georgeWashingtonBirthplace", "usa/navajo", "usa/mountRushmore",
        "usa/statueofLiberty", "usa/castillodeSanMarcos", "usa/fortSumter", "usa/castleClinton",
        "egypt/meidumPyramid", "egypt/greatPyramidOfGiza", "egypt/bentPyramid", "egypt/redPyramid",
        "india/greatStupa", "india/gatewayofIndia", "india/konarkSunTemple", "india/charminar", "india/hawaMahal",
        "india/rangGhar", "india/goldenTemple", "india/ajantaCave", "india/qutubMinar",
        "france/chateaudeChambord", "france/pontduGard", "france/palaisdesPapes", "france/reimsCathedral",
        "france/eiffelTower", "france/citedeCarcassonne", "france/arlesAmphitheater", "france/chateaudeChenonceau",
        "france/rocamadour", "germany/berlinCathedral", "germany/schwerinPalace", "germany/aulaPalatina",
        "germany/brandenburgGate", "germany/neuschwansteinCastle", "germany/wormsCathedral", "wonders/tajMahal",
        "wonders/colosseum", "wonders/petra", "wonders/greatWallofChina", "wonders/christTheRedeemer")),
    *(("palapeli-data", f"{PALAPELI}/{name}.jpg") for name in ("castle-maintenon", "cincinnati-bridge", "citrus-fruits")),
    *(("kphotoalbum", f"usr/share/kphotoalbum/demo/{name}.jpg") for name in (
        "bar55", "bar55_2", "donna_2", "grand_canyon_2", "grand_canyon_3", "pool", "pool_2", "skagen_2", "snow")),
    *(("scribus-template", f"usr/share/scribus/templates/{name}") for name in (
        "br2/brightness.jpg", "br2/halfmoon.jpg", "br2/moon.jpg", "br2/nature.jpg", "br2/sunset.jpg",
        "cal2/moon.jpg", "menu2/pizza.jpg", "nl1-bw/kites-bw.png")),
    *(("opencv-doc", name) for name in (
        f"{OPENCV}/smarties.png", "usr/share/doc/opencv-doc/examples/text/scenetext01.jpg",
        "usr/share/doc/opencv-doc/examples/text/scenetext03.jpg", "usr/share/doc/opencv-doc/examples/text/scenetext04.jpg",
        "usr/share/doc/opencv-doc/examples/text/scenetext05.jpg", "usr/share/doc/opencv-doc/opencv4/html/yolo.jpg")),
    *(("libelementary-data", f"usr/share/elementary/images/{name}.jpg") for name in (
        "mystrale_2", "plant_01", "rock_01", "rock_02", "sky_01", "sky_03", "twofish", "wood_01")),
    *(("gimp-help-en", f"{GIMP_HELP}/{name}") for name in (
        "filters/examples/enhance/high-pass-origin.png", "filters/examples/taj_orig.png",
        "tutorials/tone-mapping/power-lines.jpg", "using/duck_orig.png", "using/keyfob_orig.png")),
    *(("libjxl-testdata", f"{JXL}/{name}.png") for name in (
        "jxl/flower/flower", "external/wesaturate/500px/cvo9xd_keong_macan_srgb8",
        "external/wesaturate/500px/tmshre_riaphotographs_srgb8", "external/wesaturate/500px/u76c0g_bliznaca_srgb8")),
]
# Looked at and left out (besides renders, drawings, screenshots, text and processed copies):
# GCompris's clickgame sea1 and explore_world_animals scarlet_macaw (smeared WebP), KPhotoAlbum's
# wayne.jpg (stored sideways), the second frame or view of a pair already used (opencv-doc aloeR,
# basketball2, rubberwhale2) and libjxl-testdata's other encodings of flower.png.
# Held out of training: the sources of samples/.
HELD_OUT = [
    ("opencv-doc", f"{OPENCV}/butterfly.jpg"),
    ("mate-backgrounds", f"{MATE}/YellowFlower.jpg"),
    ("plasma-workspace-wallpapers", f"{PLASMA}/EveningGlow/contents/images/2560x1600.jpg"),
]
# Held out too, for choosing settings on textures, saturated colours and man-made things that the
# three above lack (fur, feathers, fruit skins, painted metal): Tux Paint's photographed stamps,
# objects cut out on transparency, each with an opaque square of 128 px or more and 15000 colours or
# more (photographs, not drawings). Written with their alpha; held_out_crops.py cuts inside it.
HELD_OUT_OBJECTS = [("tuxpaint-stamps-default", f"{STAMPS}/{name}.png") for name in (
    "animals/birds/albino_peahen", "animals/birds/helmeted_guineafowl", "animals/mammals/bears/european-bear",
    "food/fruit/Apricot_whole", "food/fruit/Strawberry2", "food/fruit/avocado", "food/fruit/cherimoya",
    "food/fruit/kiwi", "food/fruit/orange_seville", "food/spices/ginger", "household/Lightbulb",
    "household/cylinder", "household/tools/cementmixer", "household/tools/spade", "military/paratrooper",
    "military/vehicles/f22_raptor", "plants/flowers/anemone_red", "plants/flowers/daffodil",
    "plants/trees/rambutan", "seasonal/christmas/Christmas_pudding", "seasonal/christmas/Mince_Pie",
    "seasonal/christmas/Roast_turkey", "space/planets/5_jupiter", "vehicles/emergency/firetruck",
    "vehicles/flight/balloon360", "vehicles/garbagetruck", "vehicles/race/indycar", "vehicles/wheel_tractor")]
LONG_SIDE = 1024  # the long side of a training photograph at most
JPEG_SHRINK = 2   # a JPEG- (or lossy WebP-) decoded photograph shrunk by at least this factor
LOSSY = (".jpg", ".jpeg", ".webp")
assert not set(PHOTOS) & set(HELD_OUT + HELD_OUT_OBJECTS) and len(set(PHOTOS)) == len(PHOTOS)
assert {pkg for pkg, _ in PHOTOS + HELD_OUT + HELD_OUT_OBJECTS} == set(PACKAGES)


def unpack(packages: dict[str, str], into: Path) -> None:
    debs = into / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    pinned = [f"{pkg}={version}" for pkg, version in sorted(packages.items())]
    if subprocess.run(["apt-get", "download", *pinned], cwd=debs).returncode != 0:
        print("warning: a pinned version is not available (run apt-get update); "
              "taking the versions apt offers, the photographs may differ", file=sys.stderr)
        subprocess.run(["apt-get", "download", *sorted(packages)], cwd=debs, check=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(into / "root")], check=True)


def photo_name(pkg: str, rel: str) -> str:
    """``<package>__<name>``: a plasma wallpaper is named by its folder, not its resolution; of the
    PHOTOS entries of a package that share a file name, all but the first get their folder's name too
    (``gcompris-qt-data__animals_horse``, ``scribus-template__cal2_moon``)."""
    src = Path(rel)
    if pkg.startswith("plasma"):
        return f"{pkg}__{src.parent.parent.parent.name}"
    same = [r for p, r in PHOTOS if p == pkg and Path(r).stem == src.stem]
    return f"{pkg}__{src.parent.name}_{src.stem}" if same and same[0] != rel else f"{pkg}__{src.stem}"


def edje_jpeg(path: Path) -> bytes:
    """The largest JPEG stored in an Edje (Eet) file: header of 3 big-endian ints (magic,
    entries, dictionary size), then per entry 6 ints of which the first two are offset and size."""
    data = path.read_bytes()
    magic, entries = struct.unpack(">2I", data[:8])
    assert magic == 0x1EE70F42, f"{path}: not an Eet file"
    blobs = (data[off:off + size] for off, size in
             (struct.unpack(">2I", data[12 + 24 * i:20 + 24 * i]) for i in range(entries)))
    return max((b for b in blobs if b[:3] == b"\xff\xd8\xff"), key=len)


def rcc_file(archive: Path, member: str) -> bytes:
    """A file of a Qt resource archive: header "qres", version, then offsets of the tree, the data
    and the names; a tree entry is a name offset and flags (1 zlib, 2 folder), then for a folder
    its child count and first child, for a file its data offset (at entry + 10)."""
    data = archive.read_bytes()
    version, tree, blobs, names = struct.unpack(">4I", data[4:20])
    size = 14 if version == 1 else 22

    def entries(i: int, path: str):
        e = tree + i * size
        name, flags = struct.unpack(">IH", data[e:e + 6])
        length = struct.unpack(">H", data[names + name:names + name + 2])[0]
        if i:                        # entry 0 is the unnamed root
            path += "/" + data[names + name + 6:names + name + 6 + 2 * length].decode("utf-16-be")
        if flags & 2:
            count, first = struct.unpack(">2I", data[e + 6:e + 14])
            for child in range(first, first + count):
                yield from entries(child, path)
        else:
            yield path, blobs + struct.unpack(">I", data[e + 10:e + 14])[0], flags

    for path, off, flags in entries(0, ""):
        if path == member:
            blob = data[off + 4:off + 4 + struct.unpack(">I", data[off:off + 4])[0]]
            return zlib.decompress(blob[4:]) if flags & 1 else blob
    raise KeyError(f"{member} not in {archive}")


def source_file(root: Path, rel: str, scratch: Path) -> Path:
    """The image file of a PHOTOS entry; one inside an Edje or Qt resource archive is extracted to ``scratch``."""
    if ".rcc/" in rel:
        archive, member = rel.split(".rcc/", 1)
        out = scratch / Path(member).name
        out.write_bytes(rcc_file(root / f"{archive}.rcc", "/" + member))
        return out
    if rel.endswith(".edj"):
        out = scratch / f"{Path(rel).stem}.jpg"
        out.write_bytes(edje_jpeg(root / rel))
        return out
    return root / rel


def write_photos(photos: list[tuple[str, str]], root: Path, folder: Path, scratch: Path) -> None:
    """Write each photograph as PNG, long side <= LONG_SIDE, a JPEG/WebP-decoded one shrunk >= JPEG_SHRINK."""
    import cv2
    from restore.images import Picture, read_image, write_image

    if folder.exists():
        shutil.rmtree(folder)        # a rebuild leaves nothing stale behind
    folder.mkdir(parents=True)
    for pkg, rel in photos:
        src = source_file(root, rel, scratch)
        pixels = read_image(src).pixels                  # RGB (or gray) float32, upright, alpha dropped
        h, w = pixels.shape[:2]
        shrink = max(max(h, w) / LONG_SIDE, JPEG_SHRINK if src.suffix.lower() in LOSSY else 1)
        if shrink > 1:
            size = (max(1, round(w / shrink)), max(1, round(h / shrink)))
            pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)
        write_image(folder / f"{photo_name(pkg, rel)}.png", Picture(pixels=pixels))


def copy_held_out(photos: list[tuple[str, str]], root: Path, folder: Path) -> None:
    """Copy unchanged as ``<package>__<name><suffix>`` (samples/ were cut from these files)."""
    folder.mkdir(parents=True, exist_ok=True)
    for pkg, rel in photos:
        shutil.copy(root / rel, folder / f"{photo_name(pkg, rel)}{Path(rel).suffix}")


def main(out: Path) -> None:
    from restore.digits import digits_split
    from restore.images import Picture, write_image

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        unpack(PACKAGES, root)
        write_photos(PHOTOS, root / "root", out / "photos", root)
        copy_held_out(HELD_OUT, root / "root", out / "held_out")
        copy_held_out(HELD_OUT_OBJECTS, root / "root", out / "held_out_objects")
        for split in ("train", "test"):
            folder = out / f"digits_{split}"
            folder.mkdir(parents=True, exist_ok=True)
            images, labels = digits_split(root / "root" / OPENCV / "digits.png", split)
            for i, (im, label) in enumerate(zip(images, labels)):
                write_image(folder / f"{label}_{i:04d}.png", Picture(pixels=im[:, :, None]))
    print(f"{len(PHOTOS)} photographs, digits train/test and {len(HELD_OUT)} held-out photographs and {len(HELD_OUT_OBJECTS)} held-out objects in {out}")


assert len({photo_name(pkg, rel) for pkg, rel in PHOTOS}) == len(PHOTOS), "two photographs would share a name"


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data"))
