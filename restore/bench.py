"""``restore bench``: every task against the classical tools, on clean images damaged with fixed seeds.

Each condition damages the clean image, stores the damaged version as 8-bit (as a user
would hand it to the CLI), runs every method on it and scores the result against the clean
image with :mod:`restore.metrics`. Only the damaged image (and, for inpainting, the mask)
reaches a method; for denoising every method is told the true noise level. The conditions
themselves are :data:`restore.conditions.BENCHMARKS`.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from . import baselines
from .atomic import write_atomic
from .images import Picture, encode_image, quantize, to_integer
from .metrics import strict_json
from .conditions import BENCHMARKS, Condition, Damage
from .pipeline import SolverSettings, restore
from .tasks.base import DETECT

#: Every task's conditions, in the order of the tasks.
CONDITIONS: list[Condition] = [c for bench in BENCHMARKS.values() for c in bench.conditions]
QUICK_CONDITIONS = ["noise25", "superres4", "inpaint-box", "blur-gaussian2", "jpeg20"]


@dataclass
class ImageSet:
    name: str                          # "photos", "digits" or a folder name
    images: list[tuple[str, np.ndarray]]
    prior: object                      # the VAE restore uses on this set


@dataclass
class Row:
    set: str
    condition: str
    image: str
    method: str
    psnr: float
    ssim: float
    hole_psnr: float | None            # inside the damaged region, where the condition has one
    seconds: float
    device: str
    # Damage nobody masked (blind conditions): PSNR of the pixels outside it (at most 100 dB, where
    # none changed), and the pixels the method changed against the damage: precision and recall.
    intact_psnr: float | None = None
    precision: float | None = None
    recall: float | None = None


def damage(clean: np.ndarray, condition: Condition, rng: np.random.Generator) -> Damage:
    """The condition's damage, with the image as an 8-bit file would hold it."""
    made = condition.damage(clean, rng)
    return replace(made, pixels=quantize(Picture(np.clip(made.pixels, 0, 1).astype(np.float32)), ".png"))


def score(clean: np.ndarray, result: np.ndarray, condition: Condition,
          region: np.ndarray | None = None) -> tuple[float, float, float | None]:
    """PSNR and SSIM of the whole image, and PSNR inside the damaged ``region`` (if any)."""
    from .metrics import psnr
    reference, output = to_integer(clean, 8), to_integer(result, 8)
    scores = condition.task.score(reference, output)
    return scores.psnr, scores.ssim, None if region is None else psnr(reference[region], output[region])


def blind_scores(clean: np.ndarray, damaged: np.ndarray, result: np.ndarray, region: np.ndarray) -> dict:
    """For damage nobody masked: PSNR of the intact pixels (capped at 100 dB), and the pixels a
    method changed (by a level or more) against the damage: precision and recall."""
    from .metrics import psnr
    reference, output = to_integer(clean, 8), to_integer(result, 8)
    changed = (output != to_integer(damaged, 8)).reshape(region.shape + (-1,)).any(axis=2)
    hit = int((changed & region).sum())
    return {"intact_psnr": min(100.0, psnr(reference[~region], output[~region])),
            "precision": hit / max(int(changed.sum()), 1), "recall": hit / max(int(region.sum()), 1)}


def methods(condition: Condition, prior, settings: SolverSettings, samples: int = 1,
            ensemble: int = 1) -> list[tuple[str, Callable]]:
    """The available classical methods of the condition's task, then restore (and the mean of
    ``samples`` posterior samples, if more than 1, and of ``ensemble`` turns of the image)."""
    task = condition.task
    found = [(b.label, b.run) for b in condition.baselines if b.needs is None or baselines.available(b.needs)]
    own = replace(settings, prior=prior)

    def restoring(solver):
        if condition.blind:
            return lambda damaged, companion: restore(damaged, task, companion=DETECT, settings=solver)
        return lambda damaged, companion: restore(damaged, task, companion=companion, settings=solver)
    found.append(("restore", restoring(own)))
    if samples > 1:
        found.append((f"restore, mean of {samples}", restoring(replace(own, samples=samples))))
    if _turns(ensemble, condition, prior):
        found.append((f"restore, {ensemble} turns", restoring(replace(own, ensemble=ensemble))))
    if condition.blind:                  # nobody is handed the mask; restore given it is the yardstick
        found = [(label, lambda damaged, companion, run=run: run(damaged, None)) for label, run in found]
        found.append(("restore, given the mask",
                      lambda damaged, companion: restore(damaged, task, companion=companion, settings=own)))
    return found


def _turns(ensemble: int, condition: Condition, prior) -> bool:
    """Whether the condition gets a row of the ensemble: not where restore finds the mask itself,
    nor with a prior whose images are not alike turned (the digits)."""
    return ensemble > 1 and not condition.blind and getattr(prior, "symmetric", False)


def run_benchmark(sets: list[ImageSet], conditions: list[Condition], *, device: torch.device,
                  steps: int | None = None, precision: str = "auto", seed: int = 0, progress: Callable[[str], None] | None = None,
                  keep: int = 3, samples: int = 1, ensemble: int = 1) -> tuple[list[Row], dict, list[str]]:
    """Run every method on every damaged image.

    Returns the score rows, the first ``keep`` results of each (set, condition)
    for the comparison sheets, and notes on skipped methods.
    """
    notes = sorted({f"{b.label} skipped: pip install -e .[bench] to add {b.needs}"
                    for c in conditions for b in c.baselines
                    if b.needs is not None and not baselines.available(b.needs)})
    settings = SolverSettings(steps=steps, device=device, precision=precision)
    rows, shown = [], {}
    for image_set in sets:
        for condition in conditions:
            runs = methods(condition, image_set.prior, settings, samples, ensemble)
            for index, (name, clean) in enumerate(image_set.images):
                rng = np.random.default_rng([seed, index, _condition_index(condition)])
                made = damage(clean, condition, rng)
                damaged, companion = made.pixels, made.companion
                panels = [("clean", clean), ("damaged", damaged)]
                for label, fn in runs:
                    start = time.perf_counter()
                    result = fn(damaged, companion)
                    seconds = time.perf_counter() - start
                    p, s, hole = score(clean, result, condition, made.region)
                    dev = str(device) if label.startswith("restore") else "cpu"
                    rows.append(Row(image_set.name, condition.name, name, label, p, s, hole, seconds, dev,
                                    **(blind_scores(clean, damaged, result, made.region) if condition.blind else {})))
                    panels.append((label, result))
                    if progress:
                        progress(f"{image_set.name} {condition.name} {label}")
                if index < keep:
                    shown.setdefault((image_set.name, condition.name), []).append(panels)
    return rows, shown, notes


#: The conditions in the order they were introduced: a condition's seed is its place here, so a subset
#: damages images as the full run does and a new condition (added at the end) changes no other's damage.
SEED_ORDER = ("noise15", "noise25", "noise50", "superres2", "superres4", "inpaint-pixels50", "inpaint-box",
              "inpaint-scribbles", "blur-gaussian2", "blur-motion15", "jpeg10", "jpeg20", "jpeg40", "sensor40",
              "inpaint-unmasked", "superres4-jpeg30", "sensor40-jpeg90")


def _condition_index(condition: Condition) -> int:
    return SEED_ORDER.index(condition.name)


def total_runs(sets: list[ImageSet], conditions: list[Condition], samples: int = 1, ensemble: int = 1) -> int:
    own = 1 + (samples > 1)
    return sum(len(s.images) * sum(own + c.blind + _turns(ensemble, c, s.prior)
                                   + sum(b.needs is None or baselines.available(b.needs) for b in c.baselines)
                                   for c in conditions) for s in sets)


# --- reports -----------------------------------------------------------------------------------

def summarise(rows: list[Row]) -> list[dict]:
    """Mean PSNR, SSIM, hole PSNR and seconds per (set, condition, method)."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r.set, r.condition, r.method), []).append(r)
    out = []
    for (set_name, condition, method), rs in groups.items():
        def mean(name):
            values = [getattr(r, name) for r in rs if getattr(r, name) is not None]
            return float(np.mean(values)) if values else None
        out.append({"set": set_name, "condition": condition, "method": method, "images": len(rs),
                    "psnr": mean("psnr"), "ssim": mean("ssim"), "hole_psnr": mean("hole_psnr"),
                    "seconds": mean("seconds"), "device": rs[0].device, "intact_psnr": mean("intact_psnr"),
                    "precision": mean("precision"), "recall": mean("recall")})
    return out


def markdown_table(summary: list[dict]) -> str:
    """For each set and task, a row per condition and a column per method; the best PSNR in bold.

    Tasks with a damaged region (inpainting's holes) give the PSNR inside it (whole-image PSNR is
    in the JSON and CSV).
    """
    lines = []
    task_of = {c.name: name for name, bench in BENCHMARKS.items() for c in bench.conditions}
    for set_name in dict.fromkeys(s["set"] for s in summary):
        entries = [s for s in summary if s["set"] == set_name]
        count = entries[0]['images']
        lines += [f"### {set_name} ({count} image{'' if count == 1 else 's'})", ""]
        for name, bench in BENCHMARKS.items():
            rows = [s for s in entries if task_of[s["condition"]] == name]
            if not rows:
                continue
            methods = list(dict.fromkeys(s["method"] for s in rows))
            lines += [f"| {name}: {bench.metric} | " + " | ".join(methods) + " | seconds/image (restore) |",
                      "|---" * (len(methods) + 2) + "|"]
            for condition in dict.fromkeys(s["condition"] for s in rows):
                cells = {s["method"]: s for s in rows if s["condition"] == condition}
                key = lambda s: s["hole_psnr"] if s["hole_psnr"] is not None else s["psnr"]
                best = max(cells.values(), key=key)["method"]
                row = [f"{key(cells[m]):.2f} / {cells[m]['ssim']:.3f}" if m in cells else "-" for m in methods]
                row = [f"**{text}**" if m == best else text for m, text in zip(methods, row)]
                seconds = cells["restore"]["seconds"] if "restore" in cells else float("nan")
                lines.append(f"| {condition} | " + " | ".join(row) + f" | {seconds:.2f} |")
            lines.append("")
        blind = [s for s in entries if s.get("intact_psnr") is not None]
        if blind:
            lines += ["| damage nobody masked | method | PSNR dB | in the damage | intact pixels | precision | recall |",
                      "|---|---|---|---|---|---|---|"]
            lines += [f"| {s['condition']} | {s['method']} | {s['psnr']:.2f} | {s['hole_psnr']:.2f} | "
                      f"{s['intact_psnr']:.2f} | {s['precision']:.3f} | {s['recall']:.3f} |" for s in blind]
            lines.append("")
    return "\n".join(lines)


def csv_text(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(asdict(rows[0])))
    writer.writeheader()
    for r in rows:
        writer.writerow(asdict(r))
    return buffer.getvalue()


def json_text(rows: list[Row], summary: list[dict], meta: dict) -> str:
    return strict_json({"meta": meta, "summary": summary, "results": [asdict(r) for r in rows]}, indent=1)


def sheet(panels_per_image: list[list[tuple[str, np.ndarray]]], cell: int = 192) -> bytes:
    """A PNG comparison sheet: one row per image, columns clean | damaged | methods."""
    label_h = 22
    rows = []
    for panels in panels_per_image:
        tiles = []
        for label, pixels in panels:
            rgb = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels
            h, w = rgb.shape[:2]
            f = cell / max(h, w)
            interp = cv2.INTER_NEAREST if f > 2 else cv2.INTER_AREA
            small = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=interp)
            tile = np.full((cell + label_h, cell, 3), 255, np.uint8)
            tile[label_h:label_h + small.shape[0], :small.shape[1]] = np.round(
                np.clip(small, 0, 1).reshape(small.shape[0], small.shape[1], 3) * 255)
            cv2.putText(tile, label, (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            tiles.append(tile)
        rows.append(np.hstack([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles]))
    return encode_image(Picture(np.vstack(rows).astype(np.float32) / 255), ".png")


def write_report(folder, rows, shown, meta) -> list[str]:
    """results.md, results.json, results.csv and one sheet per (set, condition); returns the file names."""
    summary = summarise(rows)
    said = (f"restore: the {meta['model']} prior, {meta['precision']} on {meta['device']}, steps: {meta['steps']}"
            f"{', ensemble ' + str(meta['ensemble']) if meta.get('ensemble', 1) > 1 else ''}\n\n")
    files = {"results.md": (said + markdown_table(summary)).encode(), "results.json": json_text(rows, summary, meta).encode(),
             "results.csv": csv_text(rows).encode()}
    for (set_name, condition), panels in shown.items():
        files[f"sheet_{set_name}_{condition}.png"] = sheet(panels)
    for name, data in files.items():
        write_atomic(folder / name, data)
    return list(files)


# --- image sets --------------------------------------------------------------------------------

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "moon")


#: The smallest side of an image (after its crop) every condition can be measured on.
MIN_SIDE = 24


def centre_crop(pixels: np.ndarray, size: int, multiple: int = 8) -> np.ndarray:
    """The centred ``size`` x ``size`` crop (0: whole image), sides cut to a multiple of 8."""
    h, w = pixels.shape[:2]
    ch, cw = (min(size, h), min(size, w)) if size else (h, w)
    ch, cw = ch // multiple * multiple, cw // multiple * multiple
    t, l = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(pixels[t:t + ch, l:l + cw])


def skimage_photos(size: int, names=PHOTOS) -> list[tuple[str, np.ndarray]]:
    """scikit-image's photographs (the public benchmark set; never trained on)."""
    from skimage import data
    out = []
    for name in names:
        a = getattr(data, name)().astype(np.float32) / 255
        out.append((name, centre_crop(a[:, :, None] if a.ndim == 2 else a[:, :, :3], size)))
    return out


def digits_test(limit: int) -> list[tuple[str, np.ndarray]]:
    """The digits prior's test split (shipped as pretrained/digits_test.png), ``limit`` spread over classes."""
    from .images import read_image
    from .priors import pretrained_dir
    sheet = read_image(pretrained_dir() / "digits_test.png").pixels[:, :, 0]
    digits = sheet.reshape(50, 28, 20, 28).transpose(0, 2, 1, 3).reshape(1000, 28, 28)
    labels = np.repeat(np.arange(10), 100)
    # Take the same number from each class, spread over the split.
    order = np.argsort(np.tile(np.arange(100), 10), kind="stable")[:limit]
    return [(f"digit{labels[i]}_{i:04d}", digits[i][:, :, None].copy()) for i in sorted(order)]


#: The crop side of ``--quick``'s photographs.
QUICK_SIZE = 128
#: What --quick measures besides its conditions: images (of a folder, its first that can be
#: measured) and digits at most.
QUICK_IMAGES = 2
QUICK_DIGITS = 10


def effective_size(size: int, quick: bool) -> int:
    """The crop side photographs are measured at: ``--size``, or :data:`QUICK_SIZE` with ``--quick``."""
    return QUICK_SIZE if quick else size


def image_sets(folder: Path | None, *, prior, digits_prior=None, size: int = 256, digits: int = 100,
               quick: bool = False, note: Callable[[str], None] | None = None) -> list[ImageSet]:
    """What ``restore bench`` measures on: scikit-image's photographs and the digits test split
    (``folder`` None), or the images of ``folder`` restored with ``prior``.

    ``quick`` takes 2 images (a folder's first 2 that can be measured) at 128 pixels and at most 10 digits. A file of ``folder`` that cannot
    be read or is too small is told to ``note`` and left out (without ``note``, a ``ValueError``);
    a folder without one that can be measured is a ``ValueError``.
    """
    from .images import ImageError, find_images, read_image

    size = effective_size(size, quick)
    if folder is None:
        sets = [ImageSet("photos", skimage_photos(size, PHOTOS[:QUICK_IMAGES] if quick else PHOTOS), prior)]
        n_digits = min(digits, QUICK_DIGITS) if quick else digits
        if n_digits and digits_prior is not None:
            sets.append(ImageSet("digits", digits_test(n_digits), digits_prior))
        return sets
    files = find_images(folder)
    if not files:
        raise ValueError(f"{folder}: no images found; put PNG/JPEG/TIFF/WebP/BMP files in it")
    images = []
    for f in files:
        if quick and len(images) == QUICK_IMAGES:       # the first that can be measured
            break
        try:
            whole = read_image(f).pixels
        except ImageError as e:
            problem = str(e)
        else:
            pixels = centre_crop(whole, size)
            h, w = whole.shape[:2]
            problem = None if min(pixels.shape[:2]) >= MIN_SIDE else (
                f"{f}: {w}x{h} pixels; bench measures on images of at least {MIN_SIDE}x{MIN_SIDE} "
                "(an SSIM window and a x4 reduction must fit): leave it out of the folder")
        if problem:
            if note is None:
                raise ValueError(problem)
            note(problem)
            continue
        images.append((f.relative_to(folder).with_suffix("").as_posix(), pixels))     # sub/x and x apart
    if not images:
        raise ValueError(f"{folder}: none of its {len(files)} images can be measured (each said why); give "
                         f"readable images of at least {MIN_SIDE}x{MIN_SIDE} pixels")
    return [ImageSet(folder.resolve().name, images, prior)]
