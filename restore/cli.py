"""The ``restore`` command line: each command parses, calls the library, prints."""
from __future__ import annotations

import functools
import json as json_module
import sys
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

# Only torch-free modules here, so that --help and argument errors answer at once;
# the commands import the rest (torch among it) when they run.
from .atomic import write_atomic
from .batch import PlanError, plan, process
from .defaults import CLEAN_SIGMA, TASK_DEFAULTS
from .images import ImageError, Picture, read_image, write_image
from .masks import missing_pixels
from .priors import PriorError, load_prior

app = typer.Typer(help="Repair damaged photos with a learned VAE prior.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def main() -> None:
    """Repair damaged photos with a learned VAE prior.

    Each restoring command takes an image file or a folder (batch mode).
    """


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


class Architecture(str, Enum):
    photo = "photo"
    digits = "digits"


@app.command("train")
def train_command(
    folder: Path = typer.Argument(..., help="Folder of clean training images (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint file to write (.pt)."),
    arch: Architecture = typer.Option(Architecture.photo, help="photo: convolutional VAE, spatial latent; digits: 28x28 global-latent VAE."),
    steps: int = typer.Option(20000, help="Training steps (batches)."),
    batch_size: int = typer.Option(16, help="Crops per batch."),
    crop: Optional[int] = typer.Option(None, help="Crop size in pixels (default 64 for photo, 28 for digits)."),
    lr: float = typer.Option(1e-3, help="Adam learning rate (cosine-decayed to 1/20 of it)."),
    width: int = typer.Option(64, help="photo: feature channels of each conv layer."),
    latent: int = typer.Option(8, help="photo: latent channels; digits: latent dimension."),
    levels: int = typer.Option(2, help="photo: downsamplings; the latent is 2**levels smaller than the image."),
    degraded: float = typer.Option(0.5, help="Share of each batch shown to the encoder damaged (noise, holes, blur)."),
    gray: float = typer.Option(0.0, help="photo: share of crops turned gray, so the prior also learns gray photographs."),
    checkpoint_every: int = typer.Option(500, help="Write a checkpoint every N steps."),
    pixel_scale: bool = typer.Option(False, "--pixel-scale", help="Also learn the decoder's scale per pixel (where it is sure, the solver trusts it over the data)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this checkpoint's weights (fine-tuning); layers it lacks start new."),
    resume: bool = typer.Option(False, "--resume", help="Continue training from the checkpoint at --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out instead of refusing."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    seed: int = typer.Option(0, help="Random seed for crops, damage and sampling."),
) -> None:
    """Train a VAE prior on a folder of clean images."""
    import torch

    from .data import CropSampler, find_images
    from .model import ConvVAE, ConvVAEConfig, DigitsVAE, DigitsVAEConfig, load_checkpoint
    from .train import TrainSettings, train

    torch.manual_seed(seed)
    dev = _device_or_fail(device)
    if not folder.is_dir():
        fail(f"{folder}: not a folder; give a folder of training images")
    files = find_images(folder)
    if not files:
        fail(f"{folder}: no images found; put PNG/JPEG/TIFF/WebP/BMP files in it")
    if out.exists() and not (resume or overwrite):
        fail(f"{out} exists; pass --resume to continue it or --overwrite to start again")
    if not out.parent.is_dir():
        fail(f"{out.parent}: folder does not exist; create it first")
    state = None
    if resume:
        if not out.exists():
            fail(f"{out}: nothing to resume; run without --resume first")
        model, state = load_checkpoint(out)
        if "optimizer" not in state:
            fail(f"{out} holds no training state (a shipped prior?); train a new one instead")
        settings = TrainSettings(**{**state["meta"]["settings"], "steps": steps})
    elif init is not None:
        model = _init_from(init, pixel_scale)
    else:
        if arch is Architecture.digits:
            model = DigitsVAE(DigitsVAEConfig(latent_dim=latent, pixel_scale=pixel_scale))
        else:
            model = ConvVAE(ConvVAEConfig(width=width, latent_channels=latent, levels=levels, pixel_scale=pixel_scale))
    if not resume:
        settings = TrainSettings(steps=steps, batch_size=batch_size, lr=lr, degraded_fraction=degraded, gray_fraction=gray,
                                 crop=crop or (28 if isinstance(model, DigitsVAE) else 64),
                                 checkpoint_every=checkpoint_every, seed=seed, init=str(init) if init else None)
    digits = isinstance(model, DigitsVAE)
    try:
        sampler = CropSampler(files, channels=model.channels, crop=settings.crop, flips=not digits,
                              scales=(1.0,) if digits else (1.0, 0.5), seed=seed)
    except ValueError as e:
        fail(f"{folder}: {e}; lower --crop or add larger images")
    typer.echo(f"training on {len(files)} images ({len(sampler)} at all scales), "
               f"{sum(p.numel() for p in model.parameters()):,} parameters, device {dev}")
    meta = train(model, sampler, settings, out, device=dev, resume=state)
    typer.echo(f"wrote {out} after {meta['steps']} steps in {meta['seconds']:.0f} s")


def _init_from(path: Path, pixel_scale: bool):
    """The model of checkpoint ``path``, given a per-pixel scale head if asked for."""
    import copy

    try:
        model = load_prior(str(path))
    except PriorError as e:
        fail(str(e))
    # A copy: load_prior hands out one shared instance per file, and training changes it.
    model = copy.deepcopy(model)
    return model.with_pixel_scale() if pixel_scale else model


def _device_or_fail(name: str):
    from .devices import resolve_device
    try:
        return resolve_device(name)
    except ValueError as e:
        fail(str(e))


# Options shared by the restoring commands.
OUTPUT = typer.Option(None, "--output", "-o", help="Output file, or folder in batch mode (default: <stem>_<task>.<ext> beside the input).")
MODEL = typer.Option("photo", "--model", "-m", help="Prior: photo, digits, or the path of a checkpoint from 'restore train'.")
STEPS = typer.Option(None, help="Solver iterations per tile (default: " + ", ".join(
    f"{task} {d['steps']}" for task, d in TASK_DEFAULTS.items()) + "); 0 = encoder only, fastest.")
MODE = typer.Option("joint", help="joint: MAP over image and latent (keeps detail); latent: over the latent only.")
DEVICE = typer.Option("auto", help="auto (GPU if present), cpu, cuda or cuda:N.")
REF = typer.Option(None, "--ref", help="Clean reference file or folder (matched by name) to score PSNR/SSIM.")
JSON = typer.Option(None, "--json", help="Write per-file results (metrics, seconds, device, model, sigma) to this JSON file.")
RECURSIVE = typer.Option(False, "--recursive", "-r", help="In batch mode, descend into subfolders.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace outputs that already exist.")
SKIP_EXISTING = typer.Option(False, "--skip-existing", help="Leave files whose output exists alone (resume a batch).")
SEED = typer.Option(0, help="Random seed; equal seeds give equal results.")
TILE = typer.Option(None, help="Tile size in output pixels for large images (default: the prior's).")
MAX_MP = typer.Option(100.0, "--max-megapixels", help="Refuse images larger than this many megapixels.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")


@app.command("denoise")
def denoise_command(
    source: Path = typer.Argument(..., help="Noisy image, or a folder of them."),
    output: Optional[Path] = OUTPUT,
    sigma: str = typer.Option("auto", help="Noise standard deviation in 0..255 units, or 'auto' to estimate it per image."),
    model: str = MODEL, steps: Optional[int] = STEPS, mode: str = MODE, device: str = DEVICE,
    ref: Optional[Path] = REF, json: Optional[Path] = JSON, recursive: bool = RECURSIVE,
    overwrite: bool = OVERWRITE, skip_existing: bool = SKIP_EXISTING, seed: int = SEED,
    tile: Optional[int] = TILE, max_megapixels: float = MAX_MP, quiet: bool = QUIET,
) -> None:
    """Remove Gaussian noise."""
    level = _parse_sigma(sigma)

    from . import tasks

    def task(pixels, job, options, note):
        s = level
        if s is None:
            s = tasks.estimate_noise(pixels)
            note(f"{job.source}: estimated noise sigma {s:.1f}")
        return tasks.denoise(pixels, sigma=s, **options), s, pixels

    _run("denoise", task, source, output, locals())


@app.command("inpaint")
def inpaint_command(
    source: Path = typer.Argument(..., help="Image with holes, or a folder of them."),
    mask: Path = typer.Option(..., "--mask", help="Mask file (white = fill; an alpha-only mask works too), or a folder of masks matched by name."),
    mask_dilate: int = typer.Option(0, "--mask-dilate", help="Grow the holes by N pixels first."),
    output: Optional[Path] = OUTPUT,
    sigma: float = typer.Option(CLEAN_SIGMA, help="Noise of the known pixels in 0..255 units."),
    model: str = MODEL, steps: Optional[int] = STEPS, mode: str = MODE, device: str = DEVICE,
    ref: Optional[Path] = REF, json: Optional[Path] = JSON, recursive: bool = RECURSIVE,
    overwrite: bool = OVERWRITE, skip_existing: bool = SKIP_EXISTING, seed: int = SEED,
    tile: Optional[int] = TILE, max_megapixels: float = MAX_MP, quiet: bool = QUIET,
) -> None:
    """Fill the white pixels of a mask."""
    if mask_dilate < 0:
        fail("--mask-dilate must be 0 or more")

    from . import tasks

    def task(pixels, job, options, note):
        m = read_image(job.mask, max_pixels=int(max_megapixels * 1e6))
        if m.shape != pixels.shape[:2]:
            raise ImageError(f"{job.mask}: mask is {m.shape[1]}x{m.shape[0]} but {job.source} is "
                             f"{pixels.shape[1]}x{pixels.shape[0]}; give a mask of the image's size")
        missing = missing_pixels(m, dilate=mask_dilate)
        return tasks.inpaint(pixels, missing, sigma=sigma, **options), sigma, pixels

    _run("inpaint", task, source, output, locals(), mask=mask)


@app.command("superres")
def superres_command(
    source: Path = typer.Argument(..., help="Low-resolution image, or a folder of them."),
    scale: int = typer.Option(4, "--scale", "-s", help="Upscaling factor: 2, 3, 4 or 8."),
    output: Optional[Path] = OUTPUT,
    sigma: float = typer.Option(CLEAN_SIGMA, help="Noise of the low-resolution pixels in 0..255 units."),
    model: str = MODEL, steps: Optional[int] = STEPS, mode: str = MODE, device: str = DEVICE,
    ref: Optional[Path] = REF, json: Optional[Path] = JSON, recursive: bool = RECURSIVE,
    overwrite: bool = OVERWRITE, skip_existing: bool = SKIP_EXISTING, seed: int = SEED,
    tile: Optional[int] = TILE, max_megapixels: float = MAX_MP, quiet: bool = QUIET,
) -> None:
    """Upscale a low-resolution image (inverts antialiased bicubic downsampling)."""
    if scale not in (2, 3, 4, 8):
        fail(f"--scale must be 2, 3, 4 or 8, got {scale}")

    from . import baselines, tasks

    def task(pixels, job, options, note):
        bicubic = baselines.bicubic(pixels, scale)
        return tasks.superres(pixels, scale, sigma=sigma, **options), sigma, bicubic

    _run("superres", task, source, output, locals(), scale=scale)


def _parse_sigma(text: str) -> float | None:
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        fail(f"--sigma {text}: give a number in 0..255 units or 'auto'")
    if not 0 < value <= 255:
        fail(f"--sigma {text}: must be above 0 and at most 255")
    return value


def _run(task_name: str, task, source: Path, output: Optional[Path], p: dict, *,
         mask: Optional[Path] = None, scale: int = 1) -> None:
    """Plan the jobs, run them with progress bars, print the summary; exit 1 if any failed."""
    from tqdm import tqdm

    steps = p["steps"]
    if steps is not None and steps < 0:
        fail("--steps must be 0 or more")
    if p["mode"] not in ("joint", "latent"):
        fail(f"--mode {p['mode']}: use joint or latent")
    if p["tile"] is not None and p["tile"] < 8:
        fail("--tile must be at least 8 pixels")
    if p["max_megapixels"] <= 0:
        fail("--max-megapixels must be positive")
    if p["overwrite"] and p["skip_existing"]:
        fail("--overwrite and --skip-existing contradict each other; pick one")
    if p["json"] is not None and not p["json"].parent.is_dir():
        fail(f"{p['json']}: folder {p['json'].parent} does not exist; create it first")
    dev = _device_or_fail(p["device"])
    try:
        vae = load_prior(p["model"], dev)
        jobs = plan(source, output, task_name, recursive=p["recursive"], mask=mask, reference=p["ref"])
    except (PriorError, PlanError) as e:
        fail(str(e))
    for note in jobs.skipped:
        typer.echo(note, err=True)
    if not jobs.jobs:
        fail(f"{source}: no images to restore; it holds no PNG/JPEG/TIFF/WebP/BMP files")

    quiet = p["quiet"]
    note = tqdm.write if not quiet else (lambda _msg: None)
    files_bar = tqdm(jobs.jobs, desc=task_name, unit="image", disable=quiet or not jobs.batch)
    results = []
    for job in files_bar:
        solver_bar = tqdm(desc=job.source.name, unit="it", leave=False, disable=quiet)

        def progress(done, total, bar=solver_bar):
            bar.total = total
            bar.n = done
            bar.refresh()

        options = dict(prior=vae, steps=steps, mode=p["mode"], device=dev, tile=p["tile"],
                       seed=p["seed"], progress=progress)
        result = process(job, functools.partial(task, options=options, note=note),
                         overwrite=p["overwrite"], skip_existing=p["skip_existing"],
                         max_pixels=int(p["max_megapixels"] * 1e6), crop=scale if scale > 1 else 0)
        solver_bar.close()
        if result.status == "failed":
            tqdm.write(f"error: {result.message}", file=sys.stderr)
        elif result.status == "skipped":
            tqdm.write(f"skipped {job.source}: {result.output} exists")
        elif not jobs.batch or quiet:
            typer.echo(f"wrote {result.output} ({result.seconds:.1f} s on {dev})" + _scores(result))
        results.append(result)
    files_bar.close()

    if jobs.batch:
        _print_summary(results, str(dev))
    if p["json"] is not None:
        report = [{**asdict(r), "device": str(dev), "model": p["model"], "task": task_name} for r in results]
        write_atomic(p["json"], json_module.dumps(report, indent=2).encode())
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _scores(r) -> str:
    if r.psnr is None:
        return ""
    return (f"; PSNR {r.psnr:.2f} dB (input {r.input_psnr:.2f}), "
            f"SSIM {r.ssim:.4f} (input {r.input_ssim:.4f})")


def _print_summary(results, device: str) -> None:
    done = [r for r in results if r.status == "ok"]
    scored = [r for r in done if r.psnr is not None]
    if scored:
        width = max(len(Path(r.source).name) for r in scored)
        typer.echo(f"{'file':<{width}}  PSNR in  PSNR out  SSIM in  SSIM out  seconds")
        for r in scored:
            typer.echo(f"{Path(r.source).name:<{width}}  {r.input_psnr:7.2f}  {r.psnr:8.2f}  "
                       f"{r.input_ssim:7.4f}  {r.ssim:8.4f}  {r.seconds:7.1f}")
        mean = lambda key: sum(getattr(r, key) for r in scored) / len(scored)
        typer.echo(f"{'mean':<{width}}  {mean('input_psnr'):7.2f}  {mean('psnr'):8.2f}  "
                   f"{mean('input_ssim'):7.4f}  {mean('ssim'):8.4f}  {mean('seconds'):7.1f}")
    n_skip = sum(r.status == "skipped" for r in results)
    n_fail = sum(r.status == "failed" for r in results)
    seconds = sum(r.seconds for r in done)
    typer.echo(f"{len(done)} restored, {n_skip} skipped, {n_fail} failed "
               f"({seconds:.1f} s on {device})")


@app.command("bench")
def bench_command(
    folder: Optional[Path] = typer.Argument(None, help="Folder of clean images (default: scikit-image's photographs and the digits test split)."),
    output: Path = typer.Option(Path("bench-report"), "--output", "-o", help="Report folder: results.md/.json/.csv and comparison sheets."),
    task_list: str = typer.Option("denoise,superres,inpaint", "--tasks", help="Comma-separated tasks to measure."),
    quick: bool = typer.Option(False, "--quick", help="A small subset (3 conditions, 2 small images, 10 digits) for smoke tests."),
    size: int = typer.Option(256, help="Centre-crop photographs to this size (0 = whole images)."),
    digits: int = typer.Option(100, help="Digits from the test split, spread over the classes (0 = none; max 1000)."),
    model: str = MODEL, steps: Optional[int] = STEPS, device: str = DEVICE, seed: int = SEED,
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a report folder that already has results."),
    quiet: bool = QUIET,
) -> None:
    """Measure restore against classical tools (BM3D, OpenCV, scikit-image, bicubic/Lanczos)."""
    import os
    import platform
    import time

    from tqdm import tqdm

    from . import bench
    from .data import find_images

    wanted = {t.strip() for t in task_list.split(",") if t.strip()}
    if not wanted or wanted - set(bench.BASELINES):
        fail(f"--tasks {task_list}: choose from denoise, superres, inpaint")
    if not 0 <= digits <= 1000:
        fail("--digits must be between 0 and 1000")
    if size < 0:
        fail("--size must be 0 or more")
    conditions = [c for c in bench.CONDITIONS if c.task in wanted
                  and (not quick or c.name in bench.QUICK_CONDITIONS)]
    if (output / "results.json").exists() and not overwrite:
        fail(f"{output} already holds a report; pass --overwrite or choose another -o")
    dev = _device_or_fail(device)
    try:
        photo_prior = load_prior(model, dev)
        if folder is None:
            sets = [bench.ImageSet("photos", bench.skimage_photos(128 if quick else size,
                                                                  bench.PHOTOS[:2] if quick else bench.PHOTOS),
                                   photo_prior)]
            n_digits = min(digits, 10) if quick else digits
            if n_digits:
                sets.append(bench.ImageSet("digits", bench.digits_test(n_digits), load_prior("digits", dev)))
        else:
            if not folder.is_dir():
                fail(f"{folder}: not a folder; give a folder of clean images")
            files = find_images(folder)[:2 if quick else None]
            if not files:
                fail(f"{folder}: no images found")
            images = [(f.stem, bench.centre_crop(read_image(f).pixels, 128 if quick else size)) for f in files]
            sets = [bench.ImageSet(folder.name, images, photo_prior)]
    except (PriorError, ImageError) as e:
        fail(str(e))
    output.mkdir(parents=True, exist_ok=True)

    bar = tqdm(total=bench.total_runs(sets, conditions), desc="bench", unit="run", disable=quiet)
    start = time.perf_counter()
    rows, shown, notes = bench.run_benchmark(
        sets, conditions, device=dev, steps=steps, seed=seed,
        progress=lambda what: (bar.set_postfix_str(what), bar.update(1)))
    bar.close()
    for note in notes:
        typer.echo(note, err=True)
    meta = {"seconds": round(time.perf_counter() - start, 1), "device": str(dev), "model": model,
            "steps": steps if steps is not None else "task defaults", "machine": platform.platform(),
            "processor": platform.machine(), "cpus": os.cpu_count(), "quick": quick,
            "size": size, "seed": seed}
    written = bench.write_report(output, rows, shown, meta)
    typer.echo((output / "results.md").read_text())
    typer.echo(f"wrote {len(written)} files to {output} in {meta['seconds']:.0f} s")


@app.command("sample")
def sample_command(
    output: Path = typer.Option(..., "--output", "-o", help="Grid image to write (PNG, JPEG, ...)."),
    model: str = MODEL,
    n: int = typer.Option(64, "-n", help="Number of samples."),
    size: Optional[int] = typer.Option(None, help="Side of each sample in pixels (photo prior; default its tile size)."),
    temperature: float = typer.Option(1.0, help="Scale of z ~ N(0, t^2 I); below 1 gives cleaner, plainer samples."),
    seed: int = SEED, device: str = DEVICE,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output if it exists."),
) -> None:
    """Draw images from the prior: decode random latent codes into a grid."""
    from .generate import grid, sample

    _check_output(output, overwrite)
    try:
        vae = load_prior(model, _device_or_fail(device))
        images = sample(vae, n, size=size, temperature=temperature, seed=seed)
        write_image(output, Picture(grid(images)))
    except (PriorError, ImageError, ValueError) as e:
        fail(str(e))
    typer.echo(f"wrote {n} samples to {output}")


@app.command("interpolate")
def interpolate_command(
    start: Path = typer.Argument(..., help="First image."),
    end: Path = typer.Argument(..., help="Second image, of the same size."),
    output: Path = typer.Option(..., "--output", "-o", help="Image to write: the frames side by side."),
    model: str = MODEL,
    frames: int = typer.Option(8, help="Number of frames, both ends included."),
    device: str = DEVICE,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output if it exists."),
) -> None:
    """Walk the latent space between two images: decode codes on the line between their encodings."""
    from .generate import grid, interpolate

    _check_output(output, overwrite)
    try:
        vae = load_prior(model, _device_or_fail(device))
        a, b = read_image(start).pixels, read_image(end).pixels
        frames_ = interpolate(vae, a, b, frames)
        write_image(output, Picture(grid(frames_, columns=frames)))
    except (PriorError, ImageError, ValueError) as e:
        fail(str(e))
    typer.echo(f"wrote {frames} frames to {output}")


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        fail(f"{output} exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        fail(f"{output}: folder {output.parent} does not exist; create it first")
