"""Batch mode: turning a file or folder argument into jobs, and running one job safely.

:func:`plan` only decides paths, so the rules (never overwrite an input, mirror
folders, match masks and references by stem) live in one place; :func:`process`
runs one job and turns any failure into a one-line message.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .images import ImageError, Picture, is_image_file, quantize, read_image, to_integer, write_image
from .metrics import psnr, ssim
from .priors import PriorError


@dataclass
class Job:
    source: Path
    output: Path
    mask: Path | None = None
    reference: Path | None = None
    problem: str | None = None       # why this job cannot run (e.g. no matching mask)


@dataclass
class Plan:
    jobs: list[Job]
    skipped: list[str]           # notes on files that are not images
    batch: bool                  # the input was a folder


class PlanError(ValueError):
    """An argument that cannot be turned into jobs; the message says what to do."""


def default_output(source: Path, task: str) -> Path:
    """``<stem>_<task><suffix>`` beside a file; ``<name>_<task>/`` beside a folder."""
    if source.is_dir():
        return source.parent / f"{source.name}_{task}"
    return source.with_name(f"{source.stem}_{task}{source.suffix}")


def _by_stem(folder: Path, recursive: bool) -> dict[str, Path]:
    files = folder.rglob("*") if recursive else folder.glob("*")
    found: dict[str, Path] = {}
    for f in sorted(files):
        if f.is_file() and is_image_file(f):
            found.setdefault(str(f.relative_to(folder).with_suffix("")), f)
            found.setdefault(f.stem, f)
    return found


def _companion(kind: str, given: Path | None, rel: Path, lookup: dict[str, Path] | None) -> Path | None:
    """The mask or reference for the image at ``rel``: the given file, or the match in a folder."""
    if given is None:
        return None
    if lookup is None:
        return given
    match = lookup.get(str(rel.with_suffix(""))) or lookup.get(rel.stem)
    if match is None:
        raise PlanError(f"no {kind} named '{rel.stem}.*' in {given}; add one or drop --{kind}")
    return match


def plan(source: Path, output: Path | None, task: str, *, recursive: bool = False,
         mask: Path | None = None, reference: Path | None = None) -> Plan:
    """The jobs for ``restore <task> source [-o output] [--mask ...] [--ref ...]``."""
    if not source.exists():
        raise PlanError(f"{source}: no such file or folder; check the path")
    for kind, given in (("mask", mask), ("ref", reference)):
        if given is not None and not given.exists():
            raise PlanError(f"{given}: no such file or folder for --{kind}; check the path")
    mask_lookup = _by_stem(mask, True) if mask is not None and mask.is_dir() else None
    ref_lookup = _by_stem(reference, True) if reference is not None and reference.is_dir() else None

    if source.is_file():
        if output is None:
            output = default_output(source, task)
        elif output.is_dir():
            output = output / default_output(source, task).name
        elif not output.parent.is_dir():
            raise PlanError(f"{output}: folder {output.parent} does not exist; create it or choose another -o")
        rel = Path(source.name)
        job = Job(source, output, _companion("mask", mask, rel, mask_lookup),
                  _companion("ref", reference, rel, ref_lookup))
        return Plan([job], [], batch=False)

    out_dir = output if output is not None else default_output(source, task)
    if out_dir.exists() and not out_dir.is_dir():
        raise PlanError(f"{out_dir}: is a file; with a folder of images, -o must name a folder")
    if out_dir.exists() and same_file(out_dir, source):
        raise PlanError(f"{out_dir}: output folder is the input folder; choose another -o so inputs stay untouched")
    entries = sorted(source.rglob("*") if recursive else source.glob("*"))
    jobs, skipped = [], []
    for f in entries:
        if not f.is_file() or _inside(f, out_dir):
            continue
        rel = f.relative_to(source)
        if not is_image_file(f):
            skipped.append(f"skipping {f}: not an image file")
            continue
        job = Job(f, out_dir / rel)
        try:
            job.mask = _companion("mask", mask, rel, mask_lookup)
        except PlanError as e:
            job.problem = f"{f}: {e}"
        try:
            job.reference = _companion("ref", reference, rel, ref_lookup)
        except PlanError:
            skipped.append(f"no reference for {f}: it will be restored but not scored")
        jobs.append(job)
    return Plan(jobs, skipped, batch=True)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


@dataclass
class Result:
    source: str
    output: str
    status: str                       # "ok", "skipped" or "failed"
    message: str = ""
    seconds: float = 0.0
    sigma: float | None = None
    psnr: float | None = None         # of the output against the reference
    ssim: float | None = None
    input_psnr: float | None = None   # of the input (superres: its bicubic upscale) against the reference
    input_ssim: float | None = None


def process(job: Job, restore_fn, *, overwrite: bool, skip_existing: bool, max_pixels: int,
            crop: int = 0) -> Result:
    """Read, restore, write and score one image; never raises for a bad file.

    ``restore_fn(pixels, job) -> (restored, sigma, baseline)`` does the work;
    ``baseline`` is what the output is compared against (the input, or its
    bicubic upscale).
    """
    result = Result(str(job.source), str(job.output), "ok")
    try:
        if job.problem:
            raise PlanError(job.problem)
        if job.output.exists() and same_file(job.source, job.output):
            raise ImageError(f"{job.output}: is the input file; choose another -o, inputs are never overwritten")
        if job.output.exists():
            if skip_existing:
                result.status, result.message = "skipped", "output exists"
                return result
            if not overwrite:
                raise ImageError(f"{job.output}: exists; pass --overwrite to replace it or --skip-existing to keep it")
        job.output.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(job.output.parent, os.W_OK):
            raise ImageError(f"{job.output.parent}: folder is not writable; choose another -o")
        start = time.perf_counter()
        picture = read_image(job.source, max_pixels=max_pixels)
        restored, sigma, baseline = restore_fn(picture.pixels, job)
        alpha = picture.alpha
        if alpha is not None and alpha.shape != restored.shape[:2]:
            alpha = np.clip(cv2.resize(alpha, restored.shape[1::-1], interpolation=cv2.INTER_CUBIC), 0, 1)
        out = Picture(pixels=restored.reshape(*restored.shape[:2], -1), alpha=alpha, bit_depth=picture.bit_depth)
        write_image(job.output, out)
        result.seconds, result.sigma = round(time.perf_counter() - start, 3), sigma
        if job.reference is not None:
            ref = read_image(job.reference, max_pixels=max_pixels)
            if ref.pixels.shape != out.pixels.shape:
                raise ImageError(f"{job.reference}: reference is {ref.pixels.shape} but the output is "
                                 f"{out.pixels.shape}; give the clean version of {job.source.name}")
            ref_int = to_integer(ref.pixels, ref.bit_depth)
            out_int = to_integer(quantize(out, job.output.suffix), ref.bit_depth)
            base_int = to_integer(baseline.reshape(out.pixels.shape), ref.bit_depth)
            result.psnr, result.ssim = psnr(ref_int, out_int, crop=crop), ssim(ref_int, out_int, crop=crop)
            result.input_psnr = psnr(ref_int, base_int, crop=crop)
            result.input_ssim = ssim(ref_int, base_int, crop=crop)
    except (ImageError, PriorError, PlanError, ValueError, OSError) as e:
        result.status, result.message = "failed", str(e).splitlines()[0] if str(e) else type(e).__name__
    except Exception as e:  # one bad file must not stop a batch
        result.status, result.message = "failed", f"{job.source}: unexpected {type(e).__name__}: {e}".splitlines()[0]
    return result
