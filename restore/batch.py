"""Batch mode: turning a file or folder argument into jobs, and running them safely.

:func:`plan` only decides paths, so the rules (never overwrite an input, mirror
folders, match masks and references by name) live in one place; :func:`run`
restores the jobs one after another through a ``restore_fn`` and turns any
failure into a one-line message, reporting to a :class:`Progress`. Other engines
run the same jobs through :func:`process`.
"""
from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .atomic import OutputError, check_output, check_writable, write_atomic
from .images import (IMAGE_SUFFIXES, ImageError, Picture, dropped_by, encode_image, find_images, is_hidden,
                     is_image_file, read_image, stored_pixels, to_integer, written_bits)
from .priors import PriorError
from .uncertainty import write_uncertainty


@dataclass
class Job:
    source: Path
    output: Path
    companion: Path | None = None    # the task's per-image file (inpainting: the mask)
    reference: Path | None = None
    problem: str | None = None       # why this job cannot run (e.g. no matching mask)
    uncertainty: Path | None = None  # where the uncertainty map goes, if one is wanted
    detect: bool = False             # find the companion in the image (--mask auto)
    found: Path | None = None        # where the companion found goes (--save-mask), if anywhere


@dataclass
class Plan:
    jobs: list[Job]
    skipped: list[str]           # notes on files that are not images
    batch: bool                  # the input was a folder
    folder: Path | None = None   # a batch's output folder


class PlanError(ValueError):
    """An argument that cannot be turned into jobs; the message says what to do."""


class AmbiguousMatch(PlanError):
    """Two files of a mask or reference folder match one image equally well."""


def default_output(source: Path, suffix: str, extension: str | None = None) -> Path:
    """``<stem>_<suffix><ext>`` beside a file (``ext`` the input's, or ``extension``);
    ``<name>_<suffix>/`` beside a folder."""
    if source.is_dir():
        source = source.resolve()     # "." or "photos/..": the folder's own name, beside it
        return source.parent / f"{source.name}_{suffix}"
    return source.with_name(f"{source.stem}_{suffix}{extension or source.suffix}")


#: How a companion or reference in a folder is matched to the image at ``rel``, the surest first:
#: the same relative path, the same relative path with another suffix, the same file name
#: anywhere below, the same stem anywhere below.
_KEYS = (lambda rel: str(rel), lambda rel: str(rel.with_suffix("")), lambda rel: rel.name, lambda rel: rel.stem)


def _by_name(folder: Path) -> list[dict[str, list[Path]]]:
    """The images below ``folder`` indexed by each of :data:`_KEYS`."""
    found: list[dict[str, list[Path]]] = [{} for _ in _KEYS]
    for f in find_images(folder, recursive=True):
        rel = f.relative_to(folder)
        for index, key in zip(found, _KEYS):
            index.setdefault(key(rel), []).append(f)
    return found


def _matching(kind: str, given: Path | None, rel: Path, lookup: list[dict[str, list[Path]]] | None, *,
              optional: bool = False) -> Path | None:
    """The companion or reference of the image at ``rel``: the given file, or the match in a folder
    (``optional``: one the command can go without). The surest match wins (:data:`_KEYS`); two
    equally sure ones are an error, never a guess."""
    if given is None:
        return None
    if lookup is None:
        return given
    for index, key in zip(lookup, _KEYS):
        matches = index.get(key(rel), [])
        if len(matches) == 1:
            return matches[0]
        if matches:
            names = ", ".join(str(m.relative_to(given)) for m in sorted(matches))
            raise AmbiguousMatch(f"{names} in {given} all match {rel} for --{kind}; keep one, or name it {rel.name}")
    fix = f"drop --{kind}" if optional else f"give --{kind} one file for every image"
    raise PlanError(f"no {kind} named '{rel.stem}.*' in {given}; add one or {fix}")


def plan(source: Path, output: Path | None, suffix: str, *, recursive: bool = False,
         companion: Path | None = None, companion_name: str = "mask", reference: Path | None = None,
         uncertainty: Path | None = None, extension: str | None = None, detect: bool = False,
         save_found: Path | None = None, overwrite: bool = False) -> Plan:
    """The jobs for ``restore <task> source [-o output] [--mask ...] [--ref ...] [--uncertainty ...]``.

    ``uncertainty`` is a file for a single image (a folder takes ``<stem>_std.png``), and for a
    folder of images a folder that mirrors the outputs, each map named ``<image name>.png``.
    Outputs are checked before any work: a format that can be written, and folders that exist
    (or, in batch mode, can be made) and can be written in -- else a :class:`PlanError` naming the file.
    ``extension`` replaces the inputs' extension in the outputs it names (a task whose output
    should not take the input's format). ``detect``: the companion is found in each image
    (``--mask auto``), and written to ``save_found`` if given: a file for one image, for a folder
    a folder that mirrors the inputs, each mask named ``<stem>.png`` (so that ``--mask`` takes it back).
    ``overwrite``: outputs may replace files (``--overwrite``), but never an image of the input folder
    that an output folder inside it holds (with ``recursive``, the user's as much as a last run's).
    """
    if save_found is not None and not detect:
        raise PlanError(f"--save-{companion_name}: only with --{companion_name} auto (a given {companion_name} "
                        "is already a file)")
    if not source.exists():
        raise PlanError(f"{source}: no such file or folder; check the path")
    for kind, given in ((companion_name, companion), ("ref", reference)):
        if given is not None and not given.exists():
            raise PlanError(f"{given}: no such file or folder for --{kind}; check the path")
    companions = _by_name(companion) if companion is not None and companion.is_dir() else None
    references = _by_name(reference) if reference is not None and reference.is_dir() else None

    if source.is_file():
        if output is None:
            output = default_output(source, suffix, extension)
        elif output.is_dir():
            output = output / default_output(source, suffix, extension).name
        elif not output.parent.is_dir():
            why = "is a file, not a folder;" if output.parent.exists() else "does not exist; create it or"
            raise PlanError(f"{output}: {output.parent} {why} choose another -o")
        if not output.suffix:     # 'new/' reaches here as 'new': a folder meant, not there yet
            raise PlanError(f"{output}: no such folder, and no suffix to name a file; create the folder first, or "
                            f"give -o a file name ending in {', '.join(IMAGE_SUFFIXES)}")
        if output.suffix.lower() not in IMAGE_SUFFIXES:
            raise PlanError(f"{output}: cannot write '{output.suffix}' files; give -o a name ending in "
                            f"{', '.join(IMAGE_SUFFIXES)}, or an existing folder")
        _check_writable(output.parent, output, "-o")
        rel = Path(source.name)
        job = Job(source, output, _matching(companion_name, companion, rel, companions),
                  _matching("ref", reference, rel, references, optional=True), detect=detect)
        _check_outputs([job], companion_name)
        if uncertainty is not None:
            job.uncertainty = uncertainty / f"{output.stem}_std.png" if uncertainty.is_dir() else uncertainty
            if not job.uncertainty.parent.is_dir():
                raise PlanError(f"{job.uncertainty}: folder {job.uncertainty.parent} does not exist; "
                                "create it or choose another --uncertainty")
            _check_writable(job.uncertainty.parent, job.uncertainty, "--uncertainty")
            _check_maps([job])
        if save_found is not None:
            job.found = save_found / f"{output.stem}_{companion_name}.png" if save_found.is_dir() else save_found
            if job.found.suffix.lower() not in LOSSLESS:
                lossy = " (a JPEG would blur it)" if job.found.suffix.lower() in (".jpg", ".jpeg", ".webp") else ""
                raise PlanError(f"{job.found}: a {companion_name} is saved as .png, .tif or .bmp{lossy}; rename it")
            if not job.found.parent.is_dir():
                raise PlanError(f"{job.found}: folder {job.found.parent} does not exist; create it or choose "
                                f"another --save-{companion_name}")
            _check_writable(job.found.parent, job.found, f"--save-{companion_name}")
            _check_found([job], companion_name)
        return Plan([job], [], batch=False)

    out_dir = output if output is not None else default_output(source, suffix)
    if out_dir.exists() and not out_dir.is_dir():
        raise PlanError(f"{out_dir}: is a file; with a folder of images, -o must name a folder")
    if not out_dir.exists() and out_dir.suffix.lower() in IMAGE_SUFFIXES:
        raise PlanError(f"{out_dir}: with a folder of images, -o names a folder, not an image file; "
                        f"give -o {out_dir.with_suffix('')}")
    if out_dir.exists() and same_file(out_dir, source):
        raise PlanError(f"{out_dir}: output folder is the input folder; choose another -o so inputs stay untouched")
    for folder, option in ((uncertainty, "--uncertainty"), (save_found, f"--save-{companion_name}")):
        if folder is not None and not folder.exists() and folder.suffix.lower() in IMAGE_SUFFIXES:
            raise PlanError(f"{folder}: with a folder of images, {option} names a folder, not an image file; "
                            f"give {option} {folder.with_suffix('')}")
        if folder is not None and (folder.is_file() or same_file(folder, source) or same_file(folder, out_dir)
                                   or _inside(folder, source)):
            raise PlanError(f"{folder}: with a folder of images, {option} must name a folder of its own, "
                            "outside the input folder")
    _check_writable(out_dir, out_dir, "-o")
    if uncertainty is not None:
        _check_writable(uncertainty, uncertainty, "--uncertainty")
    if save_found is not None:
        _check_writable(save_found, save_found, f"--save-{companion_name}")
    entries = sorted(source.rglob("*") if recursive else source.glob("*"))
    # An output folder inside the input folder holds outputs, never inputs; one around it holds both.
    outputs_among_inputs = _inside(out_dir, source)
    jobs, skipped = [], []
    targets: dict[Path, Path] = {}
    left_out: set[Path] = set()
    for f in entries:
        if outputs_among_inputs and _inside(f, out_dir):
            if f.is_file() and is_image_file(f) and not is_hidden(f.relative_to(source)):
                left_out.add(f)
            continue
        if f.is_symlink() and not f.exists():
            skipped.append(f"skipping {f}: a link to {os.readlink(f)}, which does not exist")
            continue
        if not f.is_file():
            continue
        rel = f.relative_to(source)
        if is_hidden(rel):     # .DS_Store, macOS's ._a.png, .thumbnails/: a system's files, not the user's
            continue
        if not is_image_file(f):
            skipped.append(f"skipping {f}: not an image file")
            continue
        target = out_dir / (rel if extension is None else rel.with_suffix(extension))
        job = Job(f, target, uncertainty=None if uncertainty is None else _map_path(uncertainty, rel), detect=detect,
                  found=None if save_found is None else save_found / rel.with_suffix(".png"))
        if target in targets:        # a.jpg and a.jpeg would both write a.png: the second waits
            job.problem = (f"{f}: its output {target} is also the output of {targets[target]}; "
                           "rename one of them or restore it on its own")
        targets.setdefault(target, f)
        try:
            job.companion = _matching(companion_name, companion, rel, companions)
        except PlanError as e:
            job.problem = job.problem or f"{f}: {e}"
        try:
            job.reference = _matching("ref", reference, rel, references, optional=True)
        except AmbiguousMatch as e:
            skipped.append(f"{f}: {e}; it will be restored but not scored")
        except PlanError:
            skipped.append(f"no reference for {f}: it will be restored but not scored")
        jobs.append(job)
    _check_outputs(jobs, companion_name)
    if uncertainty is not None:
        _check_maps(jobs)
    if save_found is not None:
        _check_found(jobs, companion_name)
    if left_out:
        originals = {f.resolve() for f in left_out}
        replaced = next((job.output for job in jobs if job.output.resolve() in originals), None)
        if overwrite and replaced is not None:
            raise PlanError(f"{replaced}: --overwrite would replace an image of the input folder {source} (its "
                            f"subfolder {out_dir} is -o); choose an -o outside {source}")
        n = len(left_out)
        skipped.append(f"leaving out the {n} image{'s' if n > 1 else ''} in {out_dir}: the output "
                       f"folder's files are outputs, never inputs; choose an -o outside {source} to restore them")
    return Plan(jobs, skipped, batch=True, folder=out_dir)


def _check_writable(folder: Path, output: Path, option: str) -> None:
    try:
        check_writable(folder, output=output, hint=f"choose another {option}")
    except OutputError as e:
        raise PlanError(str(e)) from None


def _map_path(folder: Path, rel: Path) -> Path:
    """The uncertainty map of the image at ``rel``: ``<rel>.png`` (``a.jpg`` -> ``a.jpg.png``), a name
    that no other image's map can take, whatever else the folder holds."""
    return folder / rel.parent / f"{rel.name}.png"


def _check_outputs(jobs: list[Job], name: str) -> None:
    """No output may replace an input, a companion (a mask) or a reference, of any job: a folder
    of masks given as the output folder would have them replaced one by one."""
    kept = {p.resolve() for job in jobs for p in (job.source, job.companion, job.reference) if p}
    for job in jobs:
        if job.output.resolve() in kept:
            kinds = f"an input, a {name} or a reference" if name else "an input or a reference"
            raise PlanError(f"{job.output}: the output would replace {kinds}; choose another -o, inputs are "
                            "never overwritten")


def _check_maps(jobs: list[Job]) -> None:
    """No uncertainty map may replace an input, an output, a mask, a reference or another map."""
    kept = {p.resolve() for job in jobs for p in (job.source, job.output, job.companion, job.reference) if p}
    maps: set[str] = set()
    for job in jobs:
        path = job.uncertainty.resolve()
        if path in kept or str(path).lower() in maps:
            raise PlanError(f"{job.uncertainty}: the uncertainty map would replace an input, an output, a mask, "
                            "a reference or another map; choose another --uncertainty")
        maps.add(str(path).lower())


#: Formats a found companion (a mask) is written in: lossless ones.
LOSSLESS = (".png", ".tif", ".tiff", ".bmp")


def _check_found(jobs: list[Job], name: str) -> None:
    """No saved companion may replace an input, an output, a reference or a map; two images whose
    masks would share a name (a.jpg, a.png) make the second's a problem of its own."""
    kept = {p.resolve() for job in jobs for p in (job.source, job.output, job.reference, job.uncertainty) if p}
    taken: dict[str, Path] = {}
    for job in jobs:
        path = job.found.resolve()
        if path in kept:
            raise PlanError(f"{job.found}: the saved {name} would replace an input, an output, a reference or a map; "
                            f"choose another --save-{name}")
        if str(path).lower() in taken:
            job.problem = job.problem or (f"{job.source}: its {name} {job.found} is also that of "
                                          f"{taken[str(path).lower()]}; rename one of them or restore it on its own")
        taken.setdefault(str(path).lower(), job.source)


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``1 <= I <= N``."""
    index, slash, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not slash or not 1 <= i <= n:
        raise ValueError(f"give I/N with 1 <= I <= N (e.g. 3/16), got {text!r}")
    return i, n


def shard(jobs: list[Job], index: int, count: int) -> list[Job]:
    """The ``index``-th (from 1) of ``count`` disjoint parts of ``jobs`` sorted by source, which
    together hold every job: every ``count``-th job from the ``index``-th, so that each part
    gets a share of every folder."""
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: need 1 <= I <= N")
    return sorted(jobs, key=lambda job: str(job.source))[index - 1::count]


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


@dataclass
class Restored:
    """What a ``restore_fn`` returns for one image."""
    pixels: np.ndarray               # (H, W, C) floats in [0, 1]
    task: Any                        # the task as run (its sigma resolved); scores the output
    damaged: np.ndarray              # the input's pixels; with a reference, scored (at the output's size) for comparison
    std: np.ndarray | None = None    # (H, W) posterior standard deviation in [0, 1] units, with samples
    found: np.ndarray | None = None  # (H, W) booleans: the companion found in the image (--mask auto)


@dataclass
class Result:
    source: str
    output: str
    status: str                       # "ok", "skipped" or "failed"
    message: str = ""
    failure: str | None = None        # what failed: "input" (a file that cannot be read or does not fit),
                                      # "output" (exists, cannot be written) or "restore" (the restoration)
    seconds: float = 0.0
    sigma: float | None = None
    sensor: tuple[float, float] | None = None   # Poisson-Gaussian noise: (A, B) of the variance A x + B
    psnr: float | None = None         # of the output against the reference
    ssim: float | None = None
    input_psnr: float | None = None   # of the input (superres: its bicubic upscale) against the reference
    input_ssim: float | None = None
    uncertainty: float | None = None  # the mean posterior standard deviation, 0..255 units (with samples)
    found: float | None = None        # --mask auto: the share of the pixels found damaged (and filled)


class Progress:
    """What :func:`run` reports; every method does nothing unless overridden."""

    def start(self, job: Job) -> None:
        """A job begins."""

    def step(self, done: int, total: int) -> None:
        """The progress of the current stage of the current job (the prior's solver steps, a pass of
        the data's filter): ``done`` of ``total``."""

    def stage(self, name: str, unit: str | None) -> None:
        """A stage of the current job begins, counting ``unit`` (None: the solver's steps)."""

    def note(self, message: str) -> None:
        """Something the user should read."""

    def finish(self, job: Job, result: Result) -> None:
        """A job ended (restored, skipped or failed)."""


#: ``restore_fn(picture, job, progress) -> Restored``: restores one image, reporting to ``progress``.
RestoreFn = Callable[[Picture, Job, Progress], Restored]


def run(jobs: list[Job], restore_fn: RestoreFn, *, overwrite: bool = False, skip_existing: bool = False,
        max_pixels: int, progress: Progress | None = None) -> list[Result]:
    """Restore every job in turn; a failure is recorded in its result and the rest go on."""
    progress = progress or Progress()
    results = []
    for job in jobs:
        progress.start(job)
        try:
            result = process(job, restore_fn, overwrite=overwrite, skip_existing=skip_existing,
                             max_pixels=max_pixels, progress=progress)
        except KeyboardInterrupt:     # the job under way wrote nothing (writes are atomic)
            raise Interrupted(results) from None
        progress.finish(job, result)
        results.append(result)
    return results


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run`: ``results`` of the jobs finished before it."""

    def __init__(self, results: list[Result]):
        super().__init__()
        self.results = results


def process(job: Job, restore_fn: RestoreFn, *, overwrite: bool, skip_existing: bool, max_pixels: int,
            progress: Progress | None = None, replaceable: frozenset[Path] = frozenset()) -> Result:
    """Read, restore, write and score one image; never raises for a bad file.

    ``replaceable``: files of the job that may be replaced whatever ``overwrite`` says (a retry's,
    written by its dead first try). A failure is recorded in the result: its one-line message, and
    what failed (``failure``).
    With a reference, the scores are those of the file as written: its 8- or 16-bit pixels,
    after JPEG's loss for a ``.jpg``.
    """
    from .pipeline import RestoreError      # here: the command line starts without torch
    progress = progress or Progress()
    result = Result(str(job.source), str(job.output), "ok")
    try:
        if job.problem:
            raise PlanError(job.problem)
        if job.output.exists() and same_file(job.source, job.output):
            raise OutputError(f"{job.output}: is the input file; choose another -o, inputs are never overwritten")
        _make_folder(job.output.parent)
        ours = job.output in replaceable
        if not check_output(job.output, overwrite=overwrite or ours, skip_existing=skip_existing and not ours,
                            hint="pass --overwrite to replace it or --skip-existing to keep it"):
            result.status, result.message = "skipped", "output exists"
            return result
        for extra in (job.uncertainty, job.found):
            if extra is not None:
                _make_folder(extra.parent)
                # Not with --skip-existing alone: a mask corrected by hand, beside an output not yet
                # written, is the user's (a run stops between the two writes only if it dies there).
                check_output(extra, overwrite=overwrite or extra in replaceable,
                             hint=f"it is no output of a finished run ({job.output} does not exist); delete it or "
                                  "pass --overwrite to replace it" if skip_existing else "pass --overwrite to replace it")
        check_writable(job.output.parent, output=job.output, hint="choose another -o")
        start = time.perf_counter()
        picture = read_image(job.source, max_pixels=max_pixels)
        restored = restore_fn(picture, job, progress)
        # The input's bit depth, colour profile, EXIF and resolution go with the pixels (written where the
        # format allows); an upscale of a scan keeps its size on paper.
        scale = restored.pixels.shape[1] / picture.pixels.shape[1]
        out = replace(picture, pixels=restored.pixels, alpha=_resized(picture.alpha, restored.pixels.shape[:2]),
                      floating=False, read_notes=(),
                      dpi=None if picture.dpi is None else tuple(d * scale for d in picture.dpi))
        if restored.std is not None:  # the map first: a file whose output exists is done
            if job.uncertainty is not None:
                write_uncertainty(job.uncertainty, restored.std)
            result.uncertainty = round(float(restored.std.mean()) * 255, 4)
        if restored.found is not None:
            if job.found is not None:
                write_atomic(job.found, encode_image(Picture(restored.found[:, :, None].astype(np.float32)),
                                                     job.found.suffix))
            result.found = round(float(restored.found.mean()), 6)
        written = encode_image(out, job.output.suffix)
        write_atomic(job.output, written)
        result.seconds, result.sigma = round(time.perf_counter() - start, 3), restored.task.sigma
        result.sensor = getattr(restored.task, "sensor", None)
        if job.reference is not None:
            _score(result, job, written, restored, max_pixels)
    except (ImageError, PlanError) as e:
        _failed(result, "input", _naming(job.source, str(e)))
    except OutputError as e:
        _failed(result, "output", str(e))
    except (PriorError, RestoreError, ValueError, OSError) as e:
        _failed(result, "restore", _naming(job.source, str(e) or type(e).__name__))
    except Exception as e:  # one bad file must not stop a batch
        _failed(result, "restore", f"{job.source}: unexpected {type(e).__name__}: {e}")
    return result


def _naming(source: Path, message: str) -> str:
    """``message`` led by the file it is about, unless it names it already (a batch's lines must)."""
    return message if str(source) in message else f"{source}: {message}"


def _failed(result: Result, failure: str, message: str) -> None:
    result.status, result.failure, result.message = "failed", failure, message.splitlines()[0]


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{folder}: cannot create the folder ({e.strerror}); choose another output") from None


def _resized(alpha: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The alpha channel at the output's size (super-resolution enlarges it)."""
    if alpha is None or alpha.shape == shape:
        return alpha
    import cv2
    return np.clip(cv2.resize(alpha, shape[::-1], interpolation=cv2.INTER_CUBIC), 0, 1)


def _score(result: Result, job: Job, written: bytes, restored: Restored, max_pixels: int) -> None:
    """PSNR and SSIM of the output as written (``written``, the file's bytes) and of the input at
    the output's size, against the reference, in the reference's bit depth; on integers, so that
    no float copy of a large photograph is made."""
    reference, bits = stored_pixels(job.reference, max_pixels=max_pixels)
    output = to_integer(stored_pixels(job.output, written)[0], bits)
    if reference.shape != output.shape:
        raise ImageError(f"{job.reference}: reference is {reference.shape} but the output is "
                         f"{output.shape}; give the clean version of {job.source.name}")
    scores = restored.task.score(reference, output)
    del output
    damaged = to_integer(restored.task.input_estimate(restored.damaged), bits).reshape(reference.shape)
    given = restored.task.score(reference, damaged)
    result.psnr, result.ssim, result.input_psnr, result.input_ssim = scores.psnr, scores.ssim, given.psnr, given.ssim


def _check_reference(job: Job, picture: Picture, scale: int, max_pixels: int) -> None:
    """A reference that cannot score the output (unreadable, or of another size) is refused
    before any work, so that no output is written for a run that must fail."""
    from .metrics import SSIM_RADIUS
    h, w = picture.pixels.shape[:2]
    try:
        size = stored_pixels(job.reference, max_pixels=max_pixels)[0].shape[:2]
    except ImageError as e:
        raise ImageError(f"--ref {e}") from None          # said of the reference, not of the image
    if size != (h * scale, w * scale):
        raise ImageError(f"{job.reference}: reference is {size[1]}x{size[0]} but the output will be "
                         f"{w * scale}x{h * scale}; give the clean version of {job.source.name}")
    side = 2 * SSIM_RADIUS + 1
    if min(size) < side:
        raise ImageError(f"{job.reference}: {size[1]}x{size[0]} pixels is too small to score (SSIM needs "
                         f"{side}x{side}); leave out --ref for this image")


def _companion(task, job: Job, picture: Picture, max_pixels: int):
    """The job's companion: its file read and checked against the image's size (a mask), or what
    the image's own file holds (a JPEG's quantisation); an :class:`ImageError` naming the file."""
    from .tasks.base import CompanionError
    if job.companion is None:
        try:
            return task.companion_from_source(job.source)
        except ValueError as e:
            raise ImageError(str(e)) from None
    try:
        companion = task.read_companion(job.companion, max_pixels=max_pixels)
    except ImageError as e:       # said as the option's file, not the image's
        kind = task.companion.name if task.companion else "companion"
        raise ImageError(f"{job.source}: its --{kind} {e}") from None
    try:
        task.companion_values(companion, picture.pixels.shape[:2])
    except CompanionError as e:
        raise ImageError(f"{job.companion}: {e} ({job.source})") from None
    return companion


@contextlib.contextmanager
def _companion_notes(job: Job, progress: Progress):
    """Within it, what the restoration warns of its companion (a mask grown over every pixel:
    :class:`~restore.pipeline.CompanionWarning`) is a note of ``job``'s, said as it is found (before
    the work), every time; other warnings go on as they would."""
    from .pipeline import CompanionWarning
    with warnings.catch_warnings():
        warnings.simplefilter("always", CompanionWarning)
        shown = warnings.showwarning

        def show(message, *args, **kwargs):
            if isinstance(message, CompanionWarning):
                progress.note(f"{job.source}: {message.said}")
            else:
                shown(message, *args, **kwargs)
        warnings.showwarning = show
        yield


def file_restorer(task, settings, *, max_pixels: int) -> RestoreFn:
    """The ``restore_fn`` that restores image files under ``task`` with ``settings``
    (:class:`~restore.pipeline.SolverSettings`), reading each job's companion file."""
    from .pipeline import resolve, restore
    from .tasks.base import CompanionError

    def restore_file(picture: Picture, job: Job, progress: Progress) -> Restored:
        sampled = settings.samples > 1
        h, w = picture.pixels.shape[:2]
        if h * w * task.scale**2 > max_pixels:
            raise ImageError(f"{job.source}: the output would be {w * task.scale}x{h * task.scale} pixels, over the "
                             f"limit of {max_pixels / 1e6:g} megapixels; raise --max-megapixels or upscale less")
        if job.reference is not None:
            _check_reference(job, picture, task.scale, max_pixels)
        companion = None if job.detect else _companion(task, job, picture, max_pixels)   # refused before any note
        if picture.floating:
            progress.note(f"{job.source}: its floating-point pixels are written as "
                          f"{written_bits(picture, job.output.suffix)}-bit integers (restore writes no floats)")
        lost = dropped_by(picture, job.output.suffix)
        if lost:
            progress.note(f"{job.output}: {job.output.suffix} files as restore writes them hold no "
                          f"{' and no '.join(lost)}; name a .png output to keep it")
        for said in picture.read_notes:
            progress.note(f"{job.source}: {said}")
        if getattr(settings.prior, "channels", 3) == 1 and picture.pixels.shape[2] == 3 \
                and bool(np.ptp(picture.pixels, axis=2).max() > 0):
            progress.note(f"{job.source}: the prior sees one channel: what it restores of this colour image "
                          "comes back grey")
        if job.detect:
            with _companion_notes(job, progress):
                repaired = task.detect(picture.pixels, settings=settings, progress=progress.step, return_std=sampled)
            share = f"{repaired.mask.mean():.2%} of the pixels"
            found = (f"found {share} damaged" if not getattr(task, "mask_dilate", 0) else
                     f"{share} filled: the damage found, grown by --mask-dilate {task.mask_dilate}")
            progress.note(f"{job.source}: {found}" + (f" (mask: {job.found})" if job.found else ""))
            return Restored(repaired.pixels, task, picture.pixels, repaired.std, repaired.mask)
        advice = task.advice(job.source)
        if advice:
            progress.note(advice)
        resolved = resolve(picture.pixels, task, companion, settings=settings, progress=progress)
        said = resolved.describe_noise() if task.estimates_noise else None
        if said:
            progress.note(f"{job.source}: estimated {said}")
        try:
            with _companion_notes(job, progress):
                pixels = restore(picture.pixels, resolved, companion=companion, settings=settings, progress=progress,
                                 return_std=sampled)
        except CompanionError as e:
            raise ImageError(f"{job.companion}: {e} ({job.source})") from None
        pixels, std = pixels if sampled else (pixels, None)
        return Restored(pixels, resolved, picture.pixels, std)
    return restore_file
