"""``restore bench --speed``: how long each task takes as photographs grow, beside a classical tool.

Each task's timing conditions (:meth:`~restore.conditions.TaskBenchmark.speed_conditions`) damage a
generated photograph of each size -- for super-resolution the size is the output's -- and
restore it with the default settings. The task's reference tool (OpenCV non-local means,
Telea, Lanczos, Richardson-Lucy) runs on the same damaged image in the same run, so the ratio
of the two is measured, not quoted. Peak memory is the process's resident set while the call
runs, sampled every 20 ms.
"""
from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import cv2
import numpy as np


if TYPE_CHECKING:
    from .conditions import Baseline, Condition

SIZES = (0.25, 1.0, 4.0, 12.0)       # megapixels, 4:3
SMALLEST = 0.001                     # megapixels: 24 x 32 pixels, the least every task's timing runs on


@dataclass
class Timing:
    condition: str
    megapixels: float
    seconds: float
    peak_mb: float
    device: str
    precision: str
    reference: str
    reference_seconds: float

    @property
    def megapixels_per_second(self) -> float:
        return self.megapixels / self.seconds


def generated_photo(megapixels: float, *, seed: int = 0) -> np.ndarray:
    """A 4:3 colour image with a photograph's mix of smooth shading, edges and fine texture."""
    rng = np.random.default_rng(seed)
    h = int(round(np.sqrt(megapixels * 1e6 * 3 / 4))) // 8 * 8
    w = h * 4 // 3 // 8 * 8
    image = cv2.resize(rng.random((6, 8, 3), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):                                         # objects with sharp edges
        colour = rng.random(3).tolist()
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        axes = (int(rng.integers(w // 40, w // 6)), int(rng.integers(h // 40, h // 6)))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    texture = cv2.GaussianBlur(rng.normal(0, 0.04, (h, w, 3)).astype(np.float32), (0, 0), 1.0)
    return np.clip(image + texture, 0, 1)


def peak_memory(call: Callable[[], object]) -> tuple[object, float, float]:
    """``(result, seconds, peak resident MB)`` of ``call()``."""
    peak, done = [_resident_mb()], threading.Event()

    def sample():
        while not done.wait(0.02):
            peak.append(_resident_mb())
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        result = call()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
    return result, seconds, max(peak + [_resident_mb()])


def _resident_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):    # not Linux: the process's peak so far
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def conditions(tasks=None) -> list[tuple[Condition, Baseline]]:
    """The timed conditions of ``tasks`` (default all), each with the classical tool timed beside
    restore: the first of the task's references that runs here."""
    from .baselines import available
    from .conditions import BENCHMARKS

    def reference(condition: Condition, labels: tuple[str, ...]) -> Baseline:
        usable = {b.label: b for b in condition.baselines if b.needs is None or available(b.needs)}
        return usable[next(label for label in labels if label in usable)]

    return [(c, reference(c, bench.references))
            for name, bench in BENCHMARKS.items() if tasks is None or name in tasks for c in bench.speed_conditions()]


def run_speed(sizes, *, settings, tasks=None, progress: Callable[[str], None] | None = None) -> list[Timing]:
    """Time restore and each task's reference tool on generated photographs of ``sizes`` megapixels."""
    import torch

    from .devices import resolve_precision
    from .pipeline import restore

    device = torch.device(settings.device)
    arithmetic = "bf16" if resolve_precision(settings.precision, device) == torch.bfloat16 else "fp32"
    timings = []
    for megapixels in sizes:
        clean = generated_photo(megapixels)
        for condition, reference in conditions(tasks):
            made = condition.damage(clean, np.random.default_rng(0))
            damaged, companion = np.clip(made.pixels, 0, 1).astype(np.float32), made.companion
            _, reference_seconds, _ = peak_memory(lambda: reference.run(damaged, companion))
            _, seconds, peak = peak_memory(lambda: restore(damaged, condition.task, companion=companion,
                                                           settings=settings))
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device) / 2**20
                torch.cuda.reset_peak_memory_stats(device)
            timings.append(Timing(condition.name, megapixels, seconds, peak, str(device), arithmetic,
                                  reference.label, reference_seconds))
            if progress:
                progress(f"{condition.name} {megapixels:g} MP")
    return timings


def markdown(timings: list[Timing]) -> str:
    lines = ["| condition | megapixels | restore s | MP/s | peak MB | device | precision | reference | reference s | restore / reference |",
             "|---" * 10 + "|"]
    for t in timings:
        lines.append(f"| {t.condition} | {t.megapixels:g} | {t.seconds:.1f} | {t.megapixels_per_second:.3f} | "
                     f"{t.peak_mb:.0f} | {t.device} | {t.precision} | {t.reference} | {t.reference_seconds:.1f} | "
                     f"{t.seconds / max(t.reference_seconds, 1e-9):.1f}x |")
    return "\n".join(lines) + "\n"
