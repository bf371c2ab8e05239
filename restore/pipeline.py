"""The one restoration pipeline every task runs through.

Convert the image to the prior's channels, cut it into tiles, build the task's
forward model for each batch of tiles, start from the task's first guess, run
the solver, blend the tiles, convert back. Images are numpy arrays or torch
tensors, ``(H, W)`` or with a channel axis (``channel_axis``, last by default,
the same for both) of 1 or 3 channels: integers (uint8, uint16) or floats in
[0, 1]. The result has the input's type, layout and dtype. Noise levels are in
0..255 units whatever the dtype.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import numbers
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from PIL import Image
import torch

from . import wiener
from .data import is_colour, to_channels
from .devices import DEVICE_NAMES, PRECISIONS, Autocast, check_device, resolve_precision, tile_batch
from .images import out_of_range
from .model import VAE
from .priors import shared_prior
from .reconstructor import Reconstructor, check_ensemble, check_search
from .solver import SolverResult
from .tasks.base import DETECT, Task, check_seed
from .tiling import run_tiled

if TYPE_CHECKING:
    from .batch import Progress


#: The most solver steps a restoration takes (the defaults are 0 to 30; 30 steps of a 12 MP
#: photograph take minutes on a CPU, and a mistyped count would run for days).
MAX_STEPS = 10_000
#: The most posterior samples a restoration averages: each is a restoration's work again (16 give a
#: usable map; a mistyped count ran silently for hours).
MAX_SAMPLES = 1000
#: The settings that count something: whole numbers (or None where they may be left out).
WHOLE_NUMBERS = ("steps", "tile", "overlap", "tile_batch", "samples", "seed")     # ensemble: check_ensemble
REQUIRED = ("overlap", "samples", "seed")   # of those, the ones without a default to fall back on
#: The largest tile side (output pixels) a restoration takes: the networks' memory grows with
#: its square, and a photograph is restored in tiles of a few hundred pixels as well.
MAX_TILE = 4096


@dataclass(frozen=True)
class SolverSettings:
    """How to search, shared by every task; ``None`` takes the task's default."""
    prior: str | VAE = "photo"     # "photo", "digits", a checkpoint path, or a loaded model
    steps: int | None = None       # 0: the encoder alone (fast)
    mode: str = "joint"            # "joint" (JPMAP) or "latent" (CSGM)
    lr: float = 0.05
    gamma: float | None = None     # decoder std; default the prior's learned one
    prior_weight: float | None = None
    anchor: str | None = None      # "prior" N(0, I) or "encoder" q(z | first guess)
    device: str | torch.device = "cpu"
    tile: int | None = None        # tile size in output pixels; default the prior's
    overlap: int = 32
    tile_batch: int | None = None  # tiles per solver call; default by the device (restore.devices.tile_batch)
    precision: str = "auto"        # the networks' arithmetic: "auto", "fp32" or "bf16" (see restore.devices)
    samples: int = 1               # posterior samples averaged (1: the MAP estimate alone)
    sampler: str = "encoder"       # "encoder" or "langevin" (see restore.solver.posterior_samples)
    seed: int = 0                  # the samples' random numbers: the same seed gives the same output
    ensemble: int | None = None    # turns of the image restored and averaged (1, 2, 4, 8); default 1
    quick: bool = False            # the data's last filter in windows alone, once (restore.reconstructor)

    def __post_init__(self):
        for name in WHOLE_NUMBERS:
            value = getattr(self, name)
            if (value is None and name in REQUIRED) or (
                    value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral))):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        check_search(mode=self.mode, lr=self.lr, gamma=self.gamma, prior_weight=self.prior_weight,
                     anchor=self.anchor, sampler=self.sampler, quick=self.quick)
        auto = isinstance(self.device, str) and self.device.strip().lower() == "auto"
        try:                        # whether it names a device; whether this machine has it is for later
            auto or torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device {self.device!r}: unknown device; use {DEVICE_NAMES}") from None
        if self.steps is not None and not 0 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps must be 0 to {MAX_STEPS}, got {self.steps}")
        if self.tile is not None and not 8 <= self.tile <= MAX_TILE:
            raise ValueError(f"tile must be 8 to {MAX_TILE} pixels, got {self.tile}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.overlap < 0:
            raise ValueError(f"overlap must be 0 or more pixels, got {self.overlap}")
        if self.tile_batch is not None and self.tile_batch < 1:
            raise ValueError(f"tile_batch must be 1 or more tiles, got {self.tile_batch}")
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise ValueError(f"samples must be 1 to {MAX_SAMPLES} (each one more restoration), got {self.samples}")
        check_seed(self.seed)
        if self.samples > 1 and self.mode != "joint":
            raise ValueError(f"samples: posterior samples need mode 'joint', not {self.mode!r}")
        if self.ensemble is not None:
            check_ensemble(self.ensemble)

    def check(self, task: Task) -> None:
        """Refuse settings ``task`` cannot take (a ``ValueError`` naming the setting), before any work."""
        if self.mode not in task.modes:
            raise ValueError(f"mode: {task.name} searches in the {' or '.join(task.modes)} mode only, not "
                             f"{self.mode} (its data term has no gradient to follow); leave the mode at joint")

    def load(self) -> VAE:
        """The prior on the settings' device; a model given in ``prior`` is copied, never moved."""
        device = check_device(self.device)
        if isinstance(self.prior, torch.nn.Module):
            on = next(self.prior.parameters()).device
            return self.prior if on == device else copy.deepcopy(self.prior).to(device)
        return shared_prior(self.prior, device)


#: The Pillow modes whose arrays restore cannot take, and the mode each is restored in.
PILLOW_MODES = {"P": "RGB", "1": "L", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


def restore(image, task: Task, *, companion: Any = None, settings: SolverSettings = SolverSettings(),
            channel_axis: int = -1, progress: Callable[[int, int], None] | Progress | None = None,
            return_std: bool = False):
    """Restore ``image`` under ``task`` (a :class:`~restore.tasks.base.Task` with its options).

    Parameters
    ----------
    image : array or tensor
        The damaged image (see the module's docstring).
    task : Task
        What happened to the image, e.g. ``Denoise(sigma=25)``.
    companion : optional
        The task's per-image input (inpainting: the mask), or ``"auto"`` for a task that can find
        it in the image (inpainting: thin scratches, dust and specks; see :mod:`restore.damage`).
    settings : SolverSettings
        Prior, solver and tiling.
    channel_axis : int
        The axis of colour channels of a 3-D image.
    progress : callable or Progress, optional
        ``progress(done, total)``: the work done of the current stage, which starts again at 0 with
        each: the prior's solver steps (over its batches of tiles), then, where the data's last
        filter runs on the whole image (denoising, JPEG), each of its passes in bands of rows. An
        object with ``step(done, total)`` and ``stage(name, unit)`` methods
        (:class:`restore.batch.Progress`) is also told each stage first: its name, and what it
        counts (None for the solver's steps, which the caller knows best).
    return_std : bool
        Also return the posterior standard deviation per pixel (needs ``settings.samples``
        of 2 or more): ``(H, W)`` float32 in [0, 1] units, a numpy array or a tensor as the image.

    Returns
    -------
    The restored image, in the input's type, layout and dtype (and the standard deviation).
    """
    if isinstance(image, Image.Image):
        # A Pillow image is restored as its array and given back as a Pillow image (of that array's
        # mode: a palette or CMYK image comes back RGB, a bilevel one grey).
        out = restore(_pillow_array(image), task, companion=companion, settings=settings, progress=progress, return_std=return_std)
        return (Image.fromarray(out[0]), out[1]) if return_std else Image.fromarray(out)
    if not isinstance(return_std, (bool, np.bool_)):
        raise TypeError(f"return_std must be True or False, got {return_std!r}")
    if return_std and settings.samples < 2:
        raise ValueError("return_std needs samples of 2 or more")
    step, stage = _reporters(progress)
    if not isinstance(task, Task):
        raise TypeError(f"task must be a task object such as Denoise(sigma=25) from restore.tasks, got {task!r}")
    if not isinstance(settings, SolverSettings):
        raise TypeError(f"settings must be a SolverSettings, got {settings!r}")
    settings.check(task)
    pixels, back = to_pixels(image, channel_axis)
    if isinstance(companion, str) and companion.strip().lower() == DETECT:
        repaired = task.detect(pixels, settings=settings, progress=step, return_std=return_std)
        out = keep_pixels(back(repaired.pixels), image, ~repaired.mask, channel_axis)
        return (out, _like(repaired.std, image)) if return_std else out
    values = task.companion_values(companion, pixels.shape[:2])     # checked before any work
    said = None if companion is None or values is None else task.companion_note(values)
    if said:           # the command line prints it as a note; a caller of the library is warned
        warnings.warn(CompanionWarning(task.name, said), stacklevel=3)
    task = resolve(pixels, task, companion, settings=settings, progress=progress)
    vae = settings.load().for_task(task.name)
    outer = task.outer_task()
    if outer is not None and not vae.fixed_size:       # a prior of one size: no tiles on the file's blocks
        # Its own solver's defaults and tiles: the settings' steps, mode and tile are this task's.
        pixels = restore(pixels, outer, progress=_prefixed(progress, f"{outer.name} first: ", outer.defaults.steps),
                         settings=dataclasses.replace(settings, steps=None, mode="joint", tile=None, samples=1))
    device = next(vae.parameters()).device
    channels, tile_size, multiple = vae.channels, settings.tile or vae.tile_size, vae.size_multiple
    if vae.fixed_size and task.grid > 1 and multiple % task.grid and max(pixels.shape[:2]) > multiple:
        raise ValueError(f"this prior restores tiles of {multiple} pixels, which cannot lie on the JPEG's blocks of "
                         f"{task.grid}; use the photo prior")
    dtype = resolve_precision(settings.precision, device)
    tiles_per_call = settings.tile_batch or tile_batch(device, tile_size + 2 * task.margin)
    defaults = task.defaults
    if dtype != torch.float32:
        vae = Autocast(vae, dtype, float32_output=defaults.float32_output)
    steps = defaults.steps if settings.steps is None else settings.steps
    prior_weight = defaults.prior_weight if settings.prior_weight is None else settings.prior_weight
    anchor = defaults.anchor if settings.anchor is None else settings.anchor
    ensemble = settings.ensemble or 1
    data = task.data_term()
    reconstructor = Reconstructor(vae, steps=steps, mode=settings.mode, lr=settings.lr, prior_weight=prior_weight,
                                  anchor=anchor, samples=settings.samples, sampler=settings.sampler,
                                  gamma=settings.gamma, ensemble=ensemble, quick=settings.quick)

    y = torch.from_numpy(to_channels(task.to_stored(pixels), channels)).permute(2, 0, 1)[None].to(device)
    aux = None if values is None else torch.from_numpy(task.to_stored(values))[None, None].to(device)
    y = task.with_unseen_guessed(y, aux)
    count = {"done": 0, "total": 0, "tiles": 0, "filter tile count": 0, "filter tile now": 0, "passes": 0}

    def count_tiles(n):
        # The prior's work: its solver's steps on each batch of tiles (or one encoding of each).
        count["total"] = -(-n // tiles_per_call) * (steps * ensemble or 1)

    def tick(_step=None):
        count["done"] += 1
        if step is not None:
            step(count["done"], count["total"])

    def count_filter_tiles(n):
        count["filter tile count"] = n

    def filter_bands(done, total):
        # Each pass of the data's filter is a stage of its own, counted in its bands of rows.
        if done == 0:
            count["passes"] += 1
            where = (f", tile {count['filter tile now']} of {count['filter tile count']}" if count["filter tile count"] > 1
                     else "")
            if stage is not None:
                stage(f"the data's filter{where}, pass {count['passes']}", "bands of rows")
        step(done, total)

    def generators(n):
        # The samples' own generators, one per tile seeded by (seed, the tile's place in the image):
        # the caller's random state is never touched, and a tile's samples do not depend on how
        # many tiles share a solver call (that follows the device's free memory).
        first = count["tiles"]
        count["tiles"] += n
        return [torch.Generator(device).manual_seed(int(np.random.SeedSequence([settings.seed, first + i])
                                                        .generate_state(1)[0])) for i in range(n)]

    # Where the observation is the image itself (and the prior takes the data's last filter), the
    # prior restores tiles of its size and the filter runs on the blended estimate in tiles of
    # FILTER_TILE: its groups reach across the prior's tile borders, and it filters each pixel
    # about once, not once for each of the prior's tiles that overlap there.
    # One decision for the whole image: whether it is restored where its noise is made white (a
    # colour photograph's) may not differ between the tiles of the two passes. A colour image with
    # parts of grey alone (a grey scan with a colour stamp), whose grey parts carry one draw of the
    # noise in three channels, is restored tile by tile as before, each tile grey or colour.
    colour = is_colour(y)
    whole = (task.filters_whole and values is None and task.scale == 1 and not task.margin
             and getattr(vae, "data_filter", False) and not (colour and _grey_parts(y, tile_size)))
    regions = filter_tiles(*y.shape[-2:], overlap=settings.overlap, grid=task.grid) if whole else None

    def restore_tiles(tiles, aux_tiles):
        shape = (tiles.shape[-2] * task.scale + 2 * task.margin, tiles.shape[-1] * task.scale + 2 * task.margin)
        physics = task.physics(shape, aux_tiles).to(device)
        first = task.first_guess(physics, tiles)
        options = dict(data=data, x0=first, refine=task.refine(physics, tiles, first), callback=tick,
                       generator=generators(len(tiles)))
        result = reconstructor.estimate(tiles, physics, colour=colour, **options) if whole else \
            reconstructor(tiles, physics, **options)
        if steps == 0:
            tick()
        return _stacked(result)

    def finish_tiles(tiles, estimates):
        result = SolverResult(x=estimates[:, :channels], z=None,
                              variance=estimates[:, channels:] if estimates.shape[1] > channels else None)
        count["filter tile now"] += 1
        count["passes"] = 0
        with wiener.reporting(filter_bands) if step is not None else contextlib.nullcontext():
            finished = reconstructor.finish(result, tiles, task.physics(tiles.shape[-2:], None).to(device), data=data,
                                            colour=colour)
        return _stacked(finished)

    if stage is not None:
        stage("the prior", None)
    x = run_tiled(y, restore_tiles, tile=tile_size, overlap=settings.overlap, multiple=multiple, grid=task.grid,
                  scale=task.scale, margin=task.margin, batch=tiles_per_call, aux=aux, on_tiles=count_tiles,
                  skip=task.skips_tile if task.scale == 1 and not task.margin else None)
    if whole:
        x = run_tiled(y, finish_tiles, tile=regions, overlap=settings.overlap, multiple=1, grid=task.grid, batch=1,
                      aux=x, on_tiles=count_filter_tiles)
    restored = task.from_stored(x[0, :channels].permute(1, 2, 0).cpu().numpy())
    if not np.isfinite(restored).all():
        raise RestoreError("the restoration produced non-finite pixels; nothing was returned. Try --precision fp32 "
                           "or another --model")
    out = keep_pixels(back(np.clip(to_channels(restored, pixels.shape[2]), 0, 1)), image,
                      task.kept_pixels(values), channel_axis)
    if not return_std:
        return out
    if x.shape[1] > channels:
        variance = task.from_stored(x[0, channels].clamp_min(0).cpu().numpy())
    else:                            # nothing was restored: every pixel is the observation
        variance = np.zeros(pixels.shape[:2], np.float32)
    std = np.sqrt(task.map_variance(variance, values)).astype(np.float32)
    return out, _like(std, image)


#: The longest side of the tiles the data's last filter (:meth:`Reconstructor.finish`) runs in, after
#: the prior's tiles are blended (:func:`filter_tiles`): a 1 MP photograph of 4:3 in two, a 12 MP one in
#: 12 (against 20 and 252 of the prior's 256 pixels, each filtered on its own before), with a few
#: hundred MB of working memory.
FILTER_TILE = 1024


def filter_tiles(h: int, w: int, *, overlap: int, grid: int = 1) -> tuple[int, int]:
    """The tile ``(height, width)`` of the data's last filter on an image of ``h x w``: along each
    side the fewest tiles of at most :data:`FILTER_TILE` (overlapping by ``overlap``), all of one
    length, a multiple of ``grid``; an image of 1155 x 866 pixels is two tiles of 866 x 594, not two of
    1024 x 866."""
    overlap = min(overlap, FILTER_TILE // 2)      # as run_tiled takes it: at most half a tile

    def side(length: int) -> int:
        count = max(1, math.ceil((length - overlap) / (FILTER_TILE - overlap)))
        return math.ceil(((length - overlap) / count + overlap) / grid) * grid
    return side(h), side(w)


#: What the stages of :func:`resolve`'s first restoration are named after.
FIRST_LOOK = "estimating the noise: "


@dataclass(frozen=True)
class _Named:
    """A progress object of ``step`` and ``stage`` functions (:func:`restore`'s protocol)."""
    step: Callable[[int, int], None]
    stage: Callable[[str, str | None], None]


def _prefixed(progress, prefix: str, steps: int | None = None):
    """``progress`` for a restoration within another, its stages' names after ``prefix``; ``steps``:
    its solver's steps, where they are not the caller's (which it counts otherwise)."""
    step, stage = _reporters(progress)
    if stage is None:
        return progress
    counted = None if steps is None else "batches of tiles" if steps == 0 else f"solver steps ({steps} per batch of tiles)"
    return _Named(step, lambda name, unit: stage(f"{prefix}{name}", unit or counted))


def _reporters(progress) -> tuple[Callable[[int, int], None] | None, Callable[[str, str | None], None] | None]:
    """``(step, stage)`` of :func:`restore`'s ``progress``: a function is the first (the second None),
    an object with ``step`` and ``stage`` methods gives both; anything else is a TypeError."""
    if progress is None:
        return None, None
    if callable(progress):
        return progress, None
    if callable(getattr(progress, "step", None)) and callable(getattr(progress, "stage", None)):
        return progress.step, progress.stage
    raise TypeError(f"progress must be a function progress(done, total), an object with step(done, total) and "
                    f"stage(name, unit) methods, or None, got {progress!r}")


def _grey_parts(y: torch.Tensor, side: int) -> bool:
    """Whether some block of ``side`` pixels of ``y`` ``(1, 3, H, W)`` (the last ones partial) has the
    same value in its three channels at every pixel."""
    coloured = ((y[:, 0] != y[:, 1]) | (y[:, 1] != y[:, 2])).float()[:, None]
    return bool((torch.nn.functional.max_pool2d(coloured, side, ceil_mode=True) == 0).any())


def _stacked(result) -> torch.Tensor:
    """A restoration's image with its variance as one more channel, if it has one (as tiles blend)."""
    return result.x if result.variance is None else torch.cat([result.x, result.variance], 1)


#: The most pixels of the image a first restoration takes when it refines an estimate of the
#: noise (:meth:`Task.refined`): beyond, a grid of crops of :data:`PILOT_CROP` pixels.
PILOT_PIXELS = 2**20
PILOT_CROP = 256


def resolve(pixels: np.ndarray, task: Task, companion: Any = None, *, settings: SolverSettings = SolverSettings(),
            progress: Callable[[int, int], None] | Progress | None = None) -> Task:
    """``task`` made definite for ``pixels`` (``(H, W, C)`` in [0, 1]; :meth:`Task.resolve`), and
    estimated again from a first restoration of (a sample of) them where that is better
    (:meth:`Task.refined_by`: a sensor's noise estimated for denoising), which reports to
    ``progress`` as :func:`restore` does."""
    resolved = task.resolve(pixels, companion)
    if not resolved.refined_by(task):
        return resolved
    sample = pilot_sample(pixels)
    first = restore(sample, resolved, settings=dataclasses.replace(settings, ensemble=None, samples=1),
                    progress=_prefixed(progress, FIRST_LOOK))
    return resolved.refined(task, sample, first)


def pilot_sample(pixels: np.ndarray, *, limit: int = PILOT_PIXELS, crop: int = PILOT_CROP) -> np.ndarray:
    """``pixels`` themselves, or, beyond ``limit`` pixels, square crops of ``crop`` pixels (less for
    a thinner image: its short side, to a multiple of 4) spread over the image on a grid in its
    proportions, none twice, one above the other (the estimate reads blocks of 4x4 pixels, which
    stay within a crop), at most ``limit`` pixels in all."""
    h, w = pixels.shape[:2]
    if h * w <= limit:
        return pixels
    crop = max(4, min(crop, h, w) // 4 * 4)
    count = max(1, limit // (crop * crop))
    rows = int(np.clip(round(math.sqrt(count * h / w)), 1, h // crop))
    columns = int(np.clip(count // rows, 1, w // crop))
    tops = np.linspace(0, h - crop, rows).round().astype(int)
    lefts = np.linspace(0, w - crop, columns).round().astype(int)
    return np.concatenate([pixels[t:t + crop, l:l + crop] for t in tops for l in lefts])


def _like(std: np.ndarray, image):
    """``std`` as a tensor on the image's device if the image is a tensor."""
    return torch.from_numpy(std).to(image.device) if torch.is_tensor(image) else std


class CompanionWarning(UserWarning):
    """A companion that asks for something its giver may not mean (a mask that marks every pixel);
    ``said``: what of it, as the command line notes it."""

    def __init__(self, task: str, said: str):
        super().__init__(f"{task}: {said}")
        self.said = said


class RestoreError(RuntimeError):
    """A restoration that failed on its way (non-finite pixels); the message says what to try."""


def keep_pixels(out, image, kept: np.ndarray | None, channel_axis: int = -1):
    """``out`` with the pixels where ``kept`` is True copied from ``image`` bit for bit (both of the
    input's type, layout and dtype)."""
    if kept is None or not kept.any():
        return out
    if torch.is_tensor(out):
        where = torch.from_numpy(kept).to(out.device)
        if out.dim() == 3:
            where = where.unsqueeze(channel_axis % 3)
        return torch.where(where, image.detach().to(out.device), out)     # no tie to the input's gradients
    where = kept if out.ndim == 2 else np.expand_dims(kept, channel_axis % 3)
    return np.where(where, np.asarray(image), out)


def _layout_hint(shape: tuple[int, ...], channel_axis: int) -> str:
    """How to give an image of ``shape`` that the API refused, where a usual layout explains it."""
    if len(shape) == 3 and shape[-1] in (1, 3) and channel_axis % 3 != 2:
        return "; its channels are last: leave channel_axis out"
    if len(shape) == 3 and shape[0] in (1, 3) and channel_axis % 3 != 0:
        return "; a (C, H, W) tensor or array takes channel_axis=0"
    if len(shape) == 3 and shape[channel_axis] in (2, 4):
        return "; keep the colour channels (the first 3, or 1 for grey with alpha) and put the alpha back after"
    if len(shape) == 4 and shape[0] == 1:
        return "; give one image, not a batch: image[0]" + (", channel_axis=0" if shape[1] in (1, 3) else "")
    if len(shape) == 4:
        return "; give the images one at a time"
    return ""


def _pillow_array(image: Image.Image) -> np.ndarray:
    """A Pillow image's pixels (a palette's colours, not its indices), in a mode restore takes."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        raise ValueError(f"a Pillow image with alpha ({image.mode}): restore image.convert('RGB') (or 'L'), then "
                         "put the alpha back with putalpha(image.getchannel('A'))")
    return np.asarray(image.convert(PILLOW_MODES.get(image.mode, image.mode)))


def to_pixels(image, channel_axis: int = -1) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """``(H, W, C)`` float32 pixels in [0, 1], and the function that converts a result back.

    The input contract of the Python API: ``(H, W)`` or 1 or 3 channels on ``channel_axis``,
    at least one pixel; uint8, uint16, or finite floats in [0, 1] (within :data:`restore.images.FLOAT_MARGIN`).
    Anything else is a ``ValueError`` that says what to do, never silently clipped or rescaled.
    """
    if isinstance(image, (str, bytes, os.PathLike)) or image is None:
        raise TypeError(f"images are arrays or tensors, got {type(image).__name__}"
                        + (" (a file: restore.images.read_image(path).pixels, or the command line)"
                           if image is not None else ""))
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"channel_axis must be the number of the colour axis (-1 or 0), got {channel_axis!r}")
    if isinstance(image, Image.Image):
        image = _pillow_array(image)
    is_tensor = torch.is_tensor(image)
    if is_tensor:
        # numpy has no bfloat16: a bf16 tensor is read as float32, and comes back as bf16.
        tensor = image.detach().cpu()
        array = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    else:
        array = np.asarray(image)
    given = tuple(array.shape)
    if array.ndim == 3:
        if not -3 <= channel_axis < 3:
            raise ValueError(f"channel_axis {channel_axis} is not an axis of a 3-D image")
        array = np.moveaxis(array, channel_axis, -1)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)):
        raise ValueError(f"images are (H, W) or have 1 or 3 channels on channel_axis ({channel_axis}), got shape "
                         f"{given}{_layout_hint(given, channel_axis)}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"the image is empty (shape {tuple(array.shape)}); give at least one pixel")
    dtype = array.dtype
    if dtype.kind == "u" and dtype.itemsize in (1, 2):       # uint8 or uint16, in either byte order
        top = np.iinfo(dtype).max
        pixels = array.astype(np.float32) / top
    elif dtype.kind == "f":
        pixels = array.astype(np.float32)
        if not np.isfinite(pixels).all():
            raise ValueError("the image holds NaN or infinite values; replace them (e.g. np.nan_to_num) first")
        strays = out_of_range(pixels)
        if strays:
            raise ValueError(f"float images must be in [0, 1], got values in [{strays[0]:.4g}, {strays[1]:.4g}]; "
                             "divide by 255 for 8-bit values or by 65535 for 16-bit ones (or clip)")
    elif dtype.kind in "uib":
        convert = "image.to(torch.uint8)" if is_tensor else "image.astype(np.uint8)"
        raise ValueError(f"images of dtype {dtype} are not supported; give uint8 (0..255), uint16 (0..65535) "
                         f"or floats in [0, 1], e.g. {convert} for 8-bit values")
    else:
        raise ValueError(f"images of dtype {dtype} are not supported; give uint8, uint16 or floats in [0, 1]")
    gray = array.ndim == 2
    pixels = np.clip(pixels[:, :, None] if gray else pixels, 0, 1)
    out_dtype = torch.bfloat16 if is_tensor and image.dtype == torch.bfloat16 else None

    def back(result: np.ndarray):
        out = result[:, :, 0] if gray else np.moveaxis(result, -1, channel_axis)
        if dtype.kind == "u":
            out = np.round(out * top).astype(dtype)
        else:
            out = out.astype(dtype)
        if is_tensor:
            return torch.from_numpy(np.ascontiguousarray(out)).to(device=image.device, dtype=out_dtype)
        return out
    return pixels, back
