"""The benchmark's view of the tasks: the conditions each is measured in, how a clean image is
damaged for them, the classical tools it is measured against, and what its cells report.

Restoration never reads this module: a task for one's own experiment (see
:class:`~restore.tasks.base.Task`) needs none of it. A task joins ``restore bench`` with an entry
in :data:`BENCHMARKS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import baselines as b
from .tasks import Deblur, Dejpeg, Denoise, Inpaint, Superres, Task


@dataclass(frozen=True)
class Baseline:
    """A classical method: ``run(damaged, companion) -> restored``, both ``(H, W, C)`` floats in [0, 1]."""
    label: str
    needs: str | None          # the module it needs (an optional extra), or None
    run: Callable[[np.ndarray, Any], np.ndarray]


@dataclass(frozen=True)
class Damage:
    """A damaged image, the companion its task takes (a mask, a JPEG's quantisation) and the damaged
    region the scores single out (True where pixels were damaged), or None."""
    pixels: np.ndarray
    companion: Any = None
    region: np.ndarray | None = None


@dataclass(frozen=True)
class Condition:
    """One benchmark condition: a task with its options, how a clean ``(H, W, C)`` image in [0, 1] is
    damaged (``damage(clean, rng)``), and the classical methods beside restore.

    ``blind``: the methods are not given the companion (the mask): they find the damage themselves.
    """
    name: str
    task: Task
    damage: Callable[[np.ndarray, np.random.Generator], Damage]
    baselines: tuple[Baseline, ...]
    blind: bool = False


@dataclass(frozen=True)
class TaskBenchmark:
    """What ``restore bench`` measures a task in; ``references`` are the baselines ``--speed`` may
    time, the first that runs here (BM3D needs the ``bench`` extra)."""
    conditions: list[Condition]
    references: tuple[str, ...]
    speed: tuple[str, ...] = ()                  # the conditions ``--speed`` times (default the first)
    metric: str = "PSNR dB / SSIM"               # what the table's cells give
    extra: tuple[Condition, ...] = ()             # timed only (--speed), not in the table

    def speed_conditions(self) -> list[Condition]:
        every = {c.name: c for c in [*self.conditions, *self.extra]}
        return [every[name] for name in self.speed] if self.speed else self.conditions[:1]


# --- damage --------------------------------------------------------------------------------------

def _gaussian(sigma: float):
    def damage(clean, rng):
        return Damage(clean + rng.normal(0, sigma / 255, clean.shape))
    return damage


def _sensor(a: float, floor: float):
    def damage(clean, rng):
        return Damage(poisson_gaussian(clean, a, floor, rng))
    return damage


def poisson_gaussian(clean: np.ndarray, a: float, floor: float, rng: np.random.Generator) -> np.ndarray:
    """A sensor's noise: photon counts of gain ``a`` (variance ``a x``) plus a floor of variance ``floor``."""
    return rng.poisson(np.clip(clean, 0, 1) / a) * a + rng.normal(0, floor ** 0.5, clean.shape)


def _downsampled(task: Superres):
    def damage(clean, rng):
        import torch
        t = torch.from_numpy(np.ascontiguousarray(clean)).permute(2, 0, 1)[None]
        return Damage(task.physics(clean.shape[:2], None).A(t)[0].permute(1, 2, 0).numpy())
    return damage


def _then_jpeg(first, quality: int):
    """The damage ``first``, then written as a JPEG of ``quality`` (a camera's file, a thumbnail)."""
    def damage(clean, rng):
        from .tasks.dejpeg import jpeg_round_trip
        return Damage(*jpeg_round_trip(first(clean, rng).pixels, quality))
    return damage


def _holes(kind: str):
    def damage(clean, rng):
        from .masks import holes
        mask = holes(kind, *clean.shape[:2], rng)
        return Damage(np.where(mask[:, :, None], 1.0, clean), mask, mask)    # holes painted white
    return damage


def _old_photo(clean, rng):
    from .masks import old_photo_damage
    damaged, found = old_photo_damage(clean, rng)
    return Damage(damaged, found, found)


def blurred(task: Deblur):
    """The damage of a deblurring task: its blur (borders reflected) and its noise."""
    def damage(clean, rng):
        import torch
        t = torch.from_numpy(np.ascontiguousarray(clean)).permute(2, 0, 1)[None]
        blurred = task.physics(clean.shape[:2], None).blur_image(t)[0].permute(1, 2, 0).numpy()
        if task.sensor is not None:
            return Damage(poisson_gaussian(blurred, *task.sensor, rng))
        return Damage(blurred + rng.normal(0, task.sigma / 255, blurred.shape))
    return damage


def _jpeg(quality: int):
    def damage(clean, rng):
        from .tasks.dejpeg import jpeg_round_trip
        return Damage(*jpeg_round_trip(clean, quality))
    return damage


# --- the tasks' conditions -----------------------------------------------------------------------

def _denoising() -> TaskBenchmark:
    from .noise import estimate_noise

    def noise(s):
        return Condition(f"noise{s}", Denoise(sigma=s), _gaussian(s), (
            Baseline("BM3D", "bm3d", lambda y, _: b.bm3d(y, s)),
            Baseline("OpenCV NLM", None, lambda y, _: b.opencv_nlm(y, s)),
            Baseline("skimage TV", None, lambda y, _: b.skimage_tv(y, s)),
            Baseline("skimage wavelet", "pywt", lambda y, _: b.skimage_wavelet(y, s))))
    # A small sensor: 40 photo-electrons at white, read noise 0.02; the classical answer is told the truth.
    a, floor = 1 / 40, 0.02 ** 2
    sensor = Condition("sensor40", Denoise(noise=f"poisson-gaussian:{a:.6g},{floor:.6g}"), _sensor(a, floor), (
        Baseline("Anscombe + BM3D", "bm3d", lambda y, _: b.anscombe_bm3d(y, a, floor)),
        Baseline("BM3D (estimated sigma)", "bm3d", lambda y, _: b.bm3d(y, estimate_noise(y)))))
    # The same sensor's photograph as a camera writes it, a JPEG of quality 90: restore reads the file's
    # tables (its rounding undone first, Denoise.outer_task); the baselines take the decoded file.
    camera = Condition("sensor40-jpeg90", Denoise(noise=f"poisson-gaussian:{a:.6g},{floor:.6g}"),
                       _then_jpeg(_sensor(a, floor), 90), sensor.baselines)
    return TaskBenchmark([noise(15), noise(25), noise(50), sensor, camera], references=("OpenCV NLM",),
                         speed=("noise25",))


def _super_resolution() -> TaskBenchmark:
    def upscale(s):
        task = Superres(scale=s)
        return Condition(f"superres{s}", task, _downsampled(task), (
            Baseline("bicubic", None, lambda y, _: b.bicubic(y, s)),
            Baseline("Lanczos", None, lambda y, _: b.lanczos(y, s))))
    # A small JPEG: restore undoes the file's rounding first (Superres.outer_task); the baselines
    # upscale the decoded file, or smooth its blocks first at the strength that did best of 5, 10,
    # 15, 20 and 30 on 12 held-out crops (never the benchmark's): BM3D 15, OpenCV NLM 5.
    task = Superres(scale=4)
    thumbnail = Condition("superres4-jpeg30", task, _then_jpeg(_downsampled(task), 30), (
        Baseline("bicubic", None, lambda y, _: b.bicubic(y, 4)),
        Baseline("Lanczos", None, lambda y, _: b.lanczos(y, 4)),
        Baseline("BM3D + Lanczos", "bm3d", lambda y, _: b.lanczos(b.bm3d(y, 15), 4)),
        Baseline("OpenCV NLM + Lanczos", None, lambda y, _: b.lanczos(b.opencv_nlm(y, 5), 4))))
    return TaskBenchmark([upscale(2), upscale(4), thumbnail], references=("Lanczos",), speed=("superres4",))


def _inpainting() -> TaskBenchmark:
    methods = (Baseline("OpenCV Telea", None, b.opencv_telea),
               Baseline("OpenCV NS", None, b.opencv_navier_stokes),
               Baseline("skimage biharmonic", None, b.skimage_biharmonic))

    def fill(name, kind):
        return Condition(name, Inpaint(), _holes(kind), methods)
    # Old-photo damage that nobody masked: restore finds it (--mask auto); so must the baselines.
    unmasked = Condition("inpaint-unmasked", Inpaint(), _old_photo, (
        Baseline("median 3x3", None, lambda y, _: b.median(y, 3)),
        Baseline("median 5x5", None, lambda y, _: b.median(y, 5)),
        Baseline("top-hat + Telea", None, lambda y, _: b.tophat_telea(y))), blind=True)
    return TaskBenchmark([fill("inpaint-pixels50", "pixels"), fill("inpaint-box", "box"),
                          fill("inpaint-scribbles", "scribbles"), unmasked],
                         references=("OpenCV Telea",), metric="PSNR in the holes dB / SSIM",
                         speed=("inpaint-scratches", "inpaint-blobs"),
                         extra=(fill("inpaint-scratches", "scratches"), fill("inpaint-blobs", "blobs")))


def _deblurring() -> TaskBenchmark:
    def blur(name, kernel):
        task = Deblur(kernel=kernel, sigma=2.55)
        k = task.weights
        return Condition(name, task, blurred(task), (
            Baseline("skimage Wiener", None, lambda y, _: b.skimage_wiener(y, k)),
            Baseline("skimage Richardson-Lucy", None, lambda y, _: b.skimage_richardson_lucy(y, k))))
    return TaskBenchmark([blur("blur-gaussian2", "gaussian:2"), blur("blur-motion15", "motion:15,30")],
                         references=("skimage Richardson-Lucy",))


#: The strengths (sigma in 0..255 units) given to BM3D and to OpenCV NLM per JPEG quality: each
#: method's best of 5, 10, 15, 20 and 30 on 6 held-out crops of 128x128 (never the benchmark's).
JPEG_BASELINE_SIGMA = {10: (30.0, 15.0), 20: (30.0, 10.0), 40: (20.0, 5.0)}


def _jpeg_removal() -> TaskBenchmark:
    def compressed(q):
        bm3d, nlm = JPEG_BASELINE_SIGMA[q]
        return Condition(f"jpeg{q}", Dejpeg(), _jpeg(q), (
            Baseline("decoded JPEG", None, lambda y, _: y),
            Baseline("BM3D", "bm3d", lambda y, _: b.bm3d(y, bm3d)),
            Baseline("OpenCV NLM", None, lambda y, _: b.opencv_nlm(y, nlm))))
    return TaskBenchmark([compressed(q) for q in (10, 20, 40)], references=("BM3D", "OpenCV NLM"))


#: Each benchmarked task's conditions, by task name, in the order of :data:`~restore.tasks.TASKS`.
BENCHMARKS: dict[str, TaskBenchmark] = {"denoise": _denoising(), "superres": _super_resolution(),
                                        "inpaint": _inpainting(), "deblur": _deblurring(), "dejpeg": _jpeg_removal()}
