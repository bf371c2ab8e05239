"""``restore bench``: every task against the classical tools, on clean images damaged with fixed seeds.

Each condition damages the clean image, stores the damaged version as 8-bit (as a user
would hand it to the CLI), runs every method on it and scores the result against the clean
image with :mod:`restore.metrics`. Only the damaged image (and, for inpainting, the mask)
reaches a method; for denoising every method is told the true noise level.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass
from typing import Callable

import cv2
import numpy as np
import torch

from . import baselines, tasks
from .atomic import write_atomic
from .images import Picture, encode_image, quantize
from .metrics import psnr, ssim
from .operators import Superres


@dataclass(frozen=True)
class Condition:
    name: str
    task: str                # "denoise", "superres" or "inpaint"
    sigma: float = 0.0       # noise level, 0..255 units
    scale: int = 1
    mask: str = ""           # "pixels", "box" or "scribbles"


CONDITIONS = [
    Condition("noise15", "denoise", sigma=15), Condition("noise25", "denoise", sigma=25),
    Condition("noise50", "denoise", sigma=50),
    Condition("superres2", "superres", scale=2), Condition("superres4", "superres", scale=4),
    Condition("inpaint-pixels50", "inpaint", mask="pixels"), Condition("inpaint-box", "inpaint", mask="box"),
    Condition("inpaint-scribbles", "inpaint", mask="scribbles"),
]
QUICK_CONDITIONS = ["noise25", "superres4", "inpaint-box"]

# name -> function(damaged, condition, mask); restore itself is added by run_benchmark.
Method = Callable[[np.ndarray, Condition, "np.ndarray | None"], np.ndarray]
BASELINES: dict[str, list[tuple[str, str | None, Method]]] = {
    # (label, module it needs or None, call)
    "denoise": [
        ("BM3D", "bm3d", lambda y, c, m: baselines.bm3d(y, c.sigma)),
        ("OpenCV NLM", None, lambda y, c, m: baselines.opencv_nlm(y, c.sigma)),
        ("skimage TV", None, lambda y, c, m: baselines.skimage_tv(y, c.sigma)),
        ("skimage wavelet", "pywt", lambda y, c, m: baselines.skimage_wavelet(y, c.sigma)),
    ],
    "inpaint": [
        ("OpenCV Telea", None, lambda y, c, m: baselines.opencv_telea(y, m)),
        ("OpenCV NS", None, lambda y, c, m: baselines.opencv_navier_stokes(y, m)),
        ("skimage biharmonic", None, lambda y, c, m: baselines.skimage_biharmonic(y, m)),
    ],
    "superres": [
        ("bicubic", None, lambda y, c, m: baselines.bicubic(y, c.scale)),
        ("Lanczos", None, lambda y, c, m: baselines.lanczos(y, c.scale)),
    ],
}


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
    hole_psnr: float | None
    seconds: float
    device: str


def make_mask(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """True = missing: half the pixels at random, one centred rectangle, or strokes and text."""
    if kind == "pixels":
        return rng.random((h, w)) < 0.5
    mask = np.zeros((h, w), np.uint8)
    if kind == "box":
        mask[h * 3 // 8: h * 5 // 8, w * 3 // 8: w * 5 // 8] = 1
        return mask > 0
    thick = max(1, min(h, w) // 40)
    for _ in range(5):
        p, q = rng.integers(0, [w, h]), rng.integers(0, [w, h])
        cv2.line(mask, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 1, thick + 1)
    if min(h, w) >= 96:
        cv2.putText(mask, "restore 2026", (w // 16, h * 3 // 4), cv2.FONT_HERSHEY_SIMPLEX, w / 400, 1, thick + 1)
    return mask > 0


def damage(clean: np.ndarray, condition: Condition, rng: np.random.Generator):
    """The damaged image as an 8-bit file would hold it, and the mask (inpainting) or None."""
    mask = None
    if condition.task == "denoise":
        damaged = clean + rng.normal(0, condition.sigma / 255, clean.shape)
    elif condition.task == "superres":
        t = torch.from_numpy(clean).permute(2, 0, 1)[None]
        damaged = Superres(condition.scale)(t)[0].permute(1, 2, 0).numpy()
    else:
        mask = make_mask(condition.mask, *clean.shape[:2], rng)
        damaged = np.where(mask[:, :, None], 1.0, clean)          # holes painted white
    return quantize(Picture(np.clip(damaged, 0, 1).astype(np.float32)), ".png"), mask


def score(clean: np.ndarray, result: np.ndarray, condition: Condition, mask) -> tuple[float, float, float | None]:
    ref, out = quantize(Picture(clean), ".png"), quantize(Picture(result), ".png")
    ref8, out8 = np.round(ref * 255).astype(np.uint8), np.round(out * 255).astype(np.uint8)
    crop = condition.scale if condition.task == "superres" else 0
    hole = psnr(ref8[mask], out8[mask]) if mask is not None else None
    return psnr(ref8, out8, crop=crop), ssim(ref8, out8, crop=crop), hole


def run_benchmark(sets: list[ImageSet], conditions: list[Condition], *, device: torch.device,
                  steps: int | None = None, seed: int = 0, progress: Callable[[str], None] | None = None,
                  keep: int = 3) -> tuple[list[Row], dict, list[str]]:
    """Run every method on every damaged image.

    Returns the score rows, the first ``keep`` results of each (set, condition)
    for the comparison sheets, and notes on skipped methods.
    """
    notes = [f"{label} skipped: pip install -e .[bench] to add {module}"
             for task in BASELINES.values() for label, module, _ in task
             if module is not None and not baselines.available(module)]
    rows, shown = [], {}
    for image_set in sets:
        for condition in conditions:
            methods = [(label, fn) for label, module, fn in BASELINES[condition.task]
                       if module is None or baselines.available(module)]
            methods.append(("restore", _restore_method(image_set.prior, device, steps, seed)))
            for index, (name, clean) in enumerate(image_set.images):
                rng = np.random.default_rng([seed, index, CONDITIONS.index(condition)])
                damaged, mask = damage(clean, condition, rng)
                panels = [("clean", clean), ("damaged", damaged)]
                for label, fn in methods:
                    start = time.perf_counter()
                    result = fn(damaged, condition, mask)
                    seconds = time.perf_counter() - start
                    p, s, hole = score(clean, result, condition, mask)
                    dev = str(device) if label == "restore" else "cpu"
                    rows.append(Row(image_set.name, condition.name, name, label, p, s, hole, seconds, dev))
                    panels.append((label, result))
                    if progress:
                        progress(f"{image_set.name} {condition.name} {label}")
                if index < keep:
                    shown.setdefault((image_set.name, condition.name), []).append(panels)
    return rows, shown, notes


def _restore_method(prior, device, steps, seed) -> Method:
    options = dict(prior=prior, device=device, steps=steps, seed=seed)

    def run(damaged, condition, mask):
        if condition.task == "denoise":
            return tasks.denoise(damaged, sigma=condition.sigma, **options)
        if condition.task == "superres":
            return tasks.superres(damaged, condition.scale, **options)
        return tasks.inpaint(damaged, mask, **options)
    return run


def total_runs(sets: list[ImageSet], conditions: list[Condition]) -> int:
    return sum(len(s.images) * sum(1 + sum(module is None or baselines.available(module)
                                           for _, module, _ in BASELINES[c.task]) for c in conditions)
               for s in sets)


# --- reports -----------------------------------------------------------------------------------

def summarise(rows: list[Row]) -> list[dict]:
    """Mean PSNR, SSIM, hole PSNR and seconds per (set, condition, method)."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r.set, r.condition, r.method), []).append(r)
    out = []
    for (set_name, condition, method), rs in groups.items():
        holes = [r.hole_psnr for r in rs if r.hole_psnr is not None]
        out.append({"set": set_name, "condition": condition, "method": method, "images": len(rs),
                    "psnr": float(np.mean([r.psnr for r in rs])), "ssim": float(np.mean([r.ssim for r in rs])),
                    "hole_psnr": float(np.mean(holes)) if holes else None,
                    "seconds": float(np.mean([r.seconds for r in rs])), "device": rs[0].device})
    return out


def markdown_table(summary: list[dict]) -> str:
    """For each set and task, a row per condition and a column per method; the best PSNR in bold.

    Inpainting cells give the PSNR inside the holes (whole-image PSNR is in the JSON and CSV).
    """
    lines = []
    conditions = {c.name: c for c in CONDITIONS}
    for set_name in dict.fromkeys(s["set"] for s in summary):
        entries = [s for s in summary if s["set"] == set_name]
        lines += [f"### {set_name} ({entries[0]['images']} images)", ""]
        for task in ("denoise", "superres", "inpaint"):
            rows = [s for s in entries if conditions[s["condition"]].task == task]
            if not rows:
                continue
            methods = list(dict.fromkeys(s["method"] for s in rows))
            what = "PSNR in the holes dB / SSIM" if task == "inpaint" else "PSNR dB / SSIM"
            lines += [f"| {task}: {what} | " + " | ".join(methods) + " | seconds/image (restore) |",
                      "|---" * (len(methods) + 2) + "|"]
            for condition in dict.fromkeys(s["condition"] for s in rows):
                cells = {s["method"]: s for s in rows if s["condition"] == condition}
                key = lambda s: s["hole_psnr"] if s["hole_psnr"] is not None else s["psnr"]
                best = max(cells.values(), key=key)["method"]
                row = [f"{key(cells[m]):.2f} / {cells[m]['ssim']:.3f}" for m in methods]
                row = [f"**{text}**" if m == best else text for m, text in zip(methods, row)]
                seconds = cells["restore"]["seconds"] if "restore" in cells else float("nan")
                lines.append(f"| {condition} | " + " | ".join(row) + f" | {seconds:.2f} |")
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
    return json.dumps({"meta": meta, "summary": summary, "results": [asdict(r) for r in rows]}, indent=1)


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
    files = {"results.md": markdown_table(summary).encode(), "results.json": json_text(rows, summary, meta).encode(),
             "results.csv": csv_text(rows).encode()}
    for (set_name, condition), panels in shown.items():
        files[f"sheet_{set_name}_{condition}.png"] = sheet(panels)
    for name, data in files.items():
        write_atomic(folder / name, data)
    return list(files)


# --- image sets --------------------------------------------------------------------------------

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "moon")


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
